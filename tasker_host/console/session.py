"""Console sessions: an API token exchanged for a signed cookie, and CSRF tokens.

The cookie holds the token's *digest* (never the token), a random nonce and an expiry, signed
with HMAC-SHA256 under the console secret; each request looks the digest up in the token store,
so a revoked token ends its sessions at once. The CSRF token of a session is an HMAC of its
nonce: every state-changing form carries it (``csrf_token`` field or ``X-CSRF-Token`` header).
The sign-in form is protected the same way by a short-lived pre-session cookie.

Cookies are ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui`` and ``Secure`` when the request came
over HTTPS. Secret: ``TASKER_CONSOLE_SECRET`` (set the same value on every API process behind one
address), else random per process (sessions end when it restarts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "tasker_session"
SIGNIN_COOKIE = "tasker_signin"
SESSION_SECONDS = 12 * 3600
COOKIE_PATH = "/ui"


@dataclass(frozen=True, slots=True)
class Session:
    digest: str  # of the API token signed in with
    nonce: str
    expires: float


class Signer:
    def __init__(self, secret: str | None = None):
        secret = secret or os.environ.get("TASKER_CONSOLE_SECRET") or secrets.token_urlsafe(32)
        self._key = hashlib.sha256(("tasker-console:" + secret).encode()).digest()

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def seal(self, session: Session) -> str:
        body = base64.urlsafe_b64encode(json.dumps([session.digest, session.nonce, session.expires]).encode()).decode()
        return f"{body}.{self._mac(body)}"

    def open(self, value: str | None, now: float) -> Session | None:
        """The session of a cookie value, or None (missing, tampered with, malformed or expired)."""
        body, _, mac = (value or "").partition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            digest, nonce, expires = json.loads(base64.urlsafe_b64decode(body.encode()))
            session = Session(str(digest), str(nonce), float(expires))
        except (ValueError, TypeError):
            return None
        return session if session.expires > now else None

    def csrf(self, purpose: str, nonce: str) -> str:
        return self._mac(f"csrf|{purpose}|{nonce}")[:40]

    def csrf_ok(self, purpose: str, nonce: str | None, sent: str | None) -> bool:
        return bool(nonce) and bool(sent) and hmac.compare_digest(self.csrf(purpose, nonce or ""), sent or "")


def new_session(digest: str, now: float | None = None) -> Session:
    return Session(digest, secrets.token_urlsafe(16), (now or time.time()) + SESSION_SECONDS)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
