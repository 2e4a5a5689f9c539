"""Who may look and who may act: host check, access token, CSRF, security headers.

- Host header: without ``allow_remote`` only loopback names are accepted, so a
  web page cannot reach the server through DNS rebinding.
- Access token (optional; required to listen beyond loopback): every request
  but ``/static`` must carry it as ``Authorization: Bearer <token>`` or as the
  cookie that ``/login`` (or ``?token=`` once) sets. The cookie holds a hash.
- Operator actions: POST only; from a loopback client unless a token is
  configured; and not cross-site: a bearer header (a browser never adds one on its
  own), or the per-process CSRF token in the form plus an Origin (or Referer)
  naming this server.
- Every response: a Content-Security-Policy that allows no inline script, no
  framing, and nothing from another origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import UsageError
from ..process import host_identity
from ..registry import Actor

COOKIE = "taskfiles_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def is_loopback(host: str | None) -> bool:
    """True for a loopback address or the name localhost."""
    if not host:
        return False
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Policy:
    """The server's access rules, fixed at start-up."""

    token: str | None = None
    token_name: str = "token"
    allow_remote: bool = False
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __post_init__(self) -> None:
        if self.allow_remote and not self.token:
            raise UsageError("serving beyond loopback needs an access token; pass --token (or set it in env)")
        if self.token is not None and len(self.token) < 8:
            raise UsageError(
                "the access token is too short; use at least 8 characters (16+ random is better)"
            )

    @property
    def cookie_value(self) -> str:
        """What the login cookie holds: a hash of the token, never the token."""
        return hashlib.sha256(f"taskfiles-serve:{self.token}".encode()).hexdigest()

    def host_allowed(self, host_header: str | None) -> bool:
        """The Host header names a loopback host, or remote hosts are allowed."""
        if self.allow_remote:
            return True
        return is_loopback(_hostname(host_header or ""))

    def bearer(self, headers: Headers) -> bool:
        """The request carries the token in an Authorization header."""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        return bool(self.token) and scheme.lower() == "bearer" and _same(value.strip(), self.token or "")

    def authenticated(self, headers: Headers) -> bool:
        """No token is configured, or the request carries it (header or cookie)."""
        if not self.token:
            return True
        if self.bearer(headers):
            return True
        cookie = SimpleCookie(headers.get("cookie", ""))
        morsel = cookie.get(COOKIE)
        return morsel is not None and _same(morsel.value, self.cookie_value)

    def token_ok(self, candidate: str) -> bool:
        """``candidate`` is the configured token."""
        return bool(self.token) and _same(candidate, self.token or "")

    def action_refusal(self, headers: Headers, client: str | None, csrf: str | None) -> str | None:
        """Why an operator action must be refused, or None to allow it."""
        if not self.token and not is_loopback(client):
            return "operator actions are allowed from this machine only (no access token is configured)"
        if self.bearer(headers):
            return None
        if not csrf or not _same(csrf, self.csrf):
            return "the form is stale or forged (CSRF token mismatch); reload the page and try again"
        if not same_origin(headers):
            return "cross-site request refused (Origin does not match this server)"
        return None

    def actor(self, client: str | None, headers: Headers) -> Actor:
        """Who acts, for the event log: web:<token name>@<address> or web:<address>."""
        address = client or "unknown"
        who = (
            f"web:{self.token_name}@{address}"
            if self.token and self.authenticated(headers)
            else f"web:{address}"
        )
        return Actor(who, host_identity(), os.getpid())


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _hostname(netloc: str) -> str:
    """The host part of ``host[:port]`` (IPv6 in brackets kept whole)."""
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def same_origin(headers: Headers) -> bool:
    """Origin (or else Referer) names the host the request was sent to."""
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is None or origin == "null":
        origin = headers.get("referer") if origin is None else None
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


class Guard:
    """ASGI middleware: host check, access token, security headers on every response."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope.get("path", "")
        send = _with_headers(send, static=path.startswith("/static/"))
        if not self.policy.host_allowed(headers.get("host")):
            await _plain(send, 421, "this server answers to localhost only (see task serve --allow-remote)")
        elif path.startswith("/static/") or path == "/login" or self.policy.authenticated(headers):
            await self.app(scope, receive, send)
        elif scope["method"] == "GET" and _query_token(scope) is not None:
            await self._login_by_query(scope, send)
        else:
            await _unauthorized(send, api=path.startswith("/api/"))

    async def _login_by_query(self, scope: Scope, send: Send) -> None:
        """``?token=`` on a GET: set the cookie and redirect to the same URL without it."""
        if not self.policy.token_ok(_query_token(scope) or ""):
            await _unauthorized(send, api=False)
            return
        query: bytes = scope.get("query_string", b"")
        pairs = [(k, v) for k, v in parse_qsl(query.decode("latin-1")) if k != "token"]
        # One leading slash: "//host/..." would redirect to another site.
        location = "/" + scope["path"].lstrip("/") + (f"?{urlencode(pairs)}" if pairs else "")
        await _redirect(send, location, login_cookie(self.policy))


def login_cookie(policy: Policy) -> str:
    """The Set-Cookie value that logs a browser in."""
    return f"{COOKIE}={policy.cookie_value}; Path=/; HttpOnly; SameSite=Strict"


def _query_token(scope: Scope) -> str | None:
    query: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(query.decode("latin-1"))).get("token")


def _with_headers(send: Send, *, static: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = list(HEADERS)
            if not static:
                extra.append((b"cache-control", b"no-store"))
            names = {name for name, _ in message.get("headers", [])}
            message = {
                **message,
                "headers": [*message.get("headers", []), *(h for h in extra if h[0] not in names)],
            }
        await send(message)

    return wrapped


async def _plain(send: Send, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
    raw = [(b"content-type", b"text/plain; charset=utf-8")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": text.encode()})


async def _unauthorized(send: Send, *, api: bool) -> None:
    if api:
        body = b'{"error":"an access token is required: send Authorization: Bearer <token>"}'
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await _redirect(send, "/login", None, status=303)


async def _redirect(send: Send, location: str, cookie: str | None, *, status: int = 303) -> None:
    headers = [(b"location", location.encode())]
    if cookie:
        headers.append((b"set-cookie", cookie.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
