"""What a person opening the server's address sees first: ``/`` (sent on to the dashboard), the
interactive API docs at ``/docs`` and the favicon.

The API docs' Swagger UI scripts and styles are served from the installed ``swagger-ui-py``
package, never from a CDN, so the docs work on a machine without internet access. ``/redoc``
(whose renderer no package ships) leads to ``/docs``.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatwell.errors import NotFound

router = APIRouter(include_in_schema=False)
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
FAVICON = resources.files("chatwell.web").joinpath("dashboard/static/favicon.svg")


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response(
        FAVICON.read_bytes(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/docs")
async def api_docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="chatwell API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon-32x32.png",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
    )


@router.get("/docs/oauth2-redirect")
async def api_docs_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/docs/assets/{name}")
async def api_docs_asset(name: str) -> Response:
    media_type = DOCS_ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such file")
    data = resources.files("swagger_ui").joinpath(f"static/{name}").read_bytes()
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/redoc")
async def redoc() -> RedirectResponse:
    return RedirectResponse("/docs", status_code=307)
