"""reCAPTCHA verification behind a small protocol, so a deployment can plug in another check.

The default verifier posts the token to Google's ``siteverify`` (or any compatible service named
by ``CHATWELL_RECAPTCHA_VERIFY_URL``) and accepts ``{"success": true}``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

log = logging.getLogger("chatwell.recaptcha")
TIMEOUT_SECONDS = 5.0


class RecaptchaVerifier(Protocol):
    async def verify(self, token: str, remote_ip: str | None) -> bool: ...


class SiteVerifyRecaptcha:
    def __init__(self, secret: str, url: str) -> None:
        self.secret = secret
        self.url = url

    async def verify(self, token: str, remote_ip: str | None) -> bool:
        form = {"secret": self.secret, "response": token}
        if remote_ip:
            form["remoteip"] = remote_ip
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
                response = await client.post(self.url, data=form)
            return response.status_code == 200 and response.json().get("success") is True
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("reCAPTCHA verification failed to complete: %s", type(exc).__name__)
            return False
