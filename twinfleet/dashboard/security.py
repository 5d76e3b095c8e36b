"""Who may use the dashboard and how: access token, CSRF, read-only, and response headers.

- Off 127.0.0.1 every request needs the access token: `?token=` once (it is then kept in an
  HttpOnly, SameSite=Strict cookie and the URL is cleaned), the cookie, or `Authorization:
  Bearer` (for Prometheus). On 127.0.0.1 the Host header must name the loopback, which defeats
  DNS rebinding.
- Every state-changing request is a POST carrying the CSRF token of this dashboard process (in
  every form); a POST from another origin is refused.
- `--read-only` refuses every POST (and the pages show no action).
- Pages may run only the dashboard's own scripts (Content-Security-Policy), are never framed,
  never cached, and send a referrer only to the dashboard itself (the token is never in a URL
  after the first redirect anyway).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from twinfleet.dashboard import settings as settings_module

__all__ = ["COOKIE", "Guard"]

COOKIE = "twinfleet_dashboard"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """The security middleware of one dashboard."""

    def __init__(self, settings: settings_module.Settings) -> None:
        self.settings = settings
        self.csrf_token = secrets.token_urlsafe(24)

    def _authorised(self, request: web.Request) -> bool:
        token = self.settings.token
        if token is None:
            return True
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer ") and _same(bearer[7:], token):
            return True
        return _same(request.cookies.get(COOKIE), token)

    def _local_host_ok(self, request: web.Request) -> bool:
        if settings_module.needs_token(self.settings.host):
            return True
        name = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else "::1"
        return name in settings_module.LOCAL_HOSTS

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._local_host_ok(request):
            raise web.HTTPForbidden(text="This dashboard answers only to 127.0.0.1.")
        token = self.settings.token
        given = request.query.get("token")
        if token is not None and given is not None:
            if not _same(given, token):
                raise web.HTTPUnauthorized(text="Wrong access token.")
            kept = [(k, v) for k, v in request.query.items() if k != "token"]
            redirect = web.HTTPSeeOther(str(request.rel_url.with_query(kept)))
            redirect.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            raise redirect
        if not self._authorised(request):
            raise web.HTTPUnauthorized(
                text="This dashboard needs its access token: open the URL it printed at start "
                "(with ?token=...)."
            )
        if request.method not in ("GET", "HEAD"):
            await self._check_post(request)
        response = await handler(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        return response

    async def _check_post(self, request: web.Request) -> None:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        if self.settings.read_only:
            raise web.HTTPForbidden(text="This dashboard is read-only: no action is allowed.")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="A request from another site was refused.")
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not _same(given, self.csrf_token):
            raise web.HTTPForbidden(
                text="The form's CSRF token is missing or stale: reload the page and try again."
            )
