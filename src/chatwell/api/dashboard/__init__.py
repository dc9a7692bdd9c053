"""The dashboard at ``/dashboard``: server-rendered pages over the same services as the API."""

from __future__ import annotations

from fastapi import APIRouter

from chatwell.api.dashboard import (
    account_pages,
    agent_pages,
    analytics,
    answer_pages,
    bot_pages,
    playground,
    workspace_pages,
)

router = APIRouter()
for _pages in (
    account_pages.router,
    bot_pages.router,
    workspace_pages.router,
    agent_pages.router,
    playground.router,
    analytics.router,
    answer_pages.router,
):
    router.include_router(_pages)
