"""What keeps other web pages out: the Origin check, CSRF tokens for forms and the security headers.

A page on any other site can make the visitor's browser talk to this server (it may run on their own
machine), so cross-origin WebSockets and form posts are refused unless ``allowed_origins`` names them.
The server's own origin is the one the request was sent to, under a host name it knows (``allowed_hosts``)
or an IP address: a page of attacker.example whose name the attacker then points at this server (DNS
rebinding) sends Host and Origin attacker.example alike, so matching Origin with Host alone let it in.
Tools such as curl send no Origin header and are not affected.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, request

CSRF_COOKIE = "emorec_csrf"
CSRF_FIELD = "csrf_token"
# Inline scripts and styles are forbidden: the pages pass their data as JSON blocks and set styles from
# scripts. data: URLs carry the results back (nothing is stored), blob: lets the page offer downloads.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob: mediastream:",
        "connect-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",  # the live page's private mode compiles ONNX Runtime's WebAssembly
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    # Not no-referrer: under it Chromium sends "Origin: null" with the page's own form posts, which the Origin
    # check must refuse (other sites' pages can send null too). same-origin keeps the referrer from every
    # other site and lets this one's posts name their origin.
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


# The names the server always answers to (create_app adds them); IP addresses are always its own (they cannot
# be re-pointed), and serve() adds the name it was told to listen on.
DEFAULT_ALLOWED_HOSTS = ("localhost",)


def origin_allowed(origin: str | None, scheme: str, host: str | None, allowed: tuple[str, ...],
                   allowed_hosts: tuple[str, ...]) -> bool:
    """True for no Origin (not a browser), one of ``allowed`` ('*' allows all), or the server's own origin:
    the scheme and host:port the request went to (``host``, its Host header), where the host is an IP
    address or one of ``allowed_hosts`` (lower-case names).

    ``scheme`` is http/https (ws/wss count as the same).
    """
    if origin is None:
        return True
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    parts = urlsplit(origin)
    own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    if not host or parts.scheme != own_scheme or parts.netloc.lower() != host.lower():
        return False
    return (parts.hostname or "") in allowed_hosts or _is_ip_address(parts.hostname or "")


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def install(app: Flask, allowed_origins: tuple[str, ...], allowed_hosts: tuple[str, ...]) -> None:
    """Security headers on every response, CSRF tokens for the forms, the Origin check on every POST."""

    @app.before_request
    def refuse_cross_origin_posts():
        if request.method == "POST" and not origin_allowed(
            request.headers.get("Origin"), request.scheme, request.host, allowed_origins, allowed_hosts
        ):
            origin = request.headers["Origin"]
            abort(403, description=f"requests from {origin} are not allowed (see --allow-origin, --allowed-host)")

    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if g.get("new_csrf_token"):
            response.set_cookie(
                CSRF_COOKIE, g.new_csrf_token, httponly=True, samesite="Strict", secure=request.is_secure
            )
        return response

    app.jinja_env.globals["csrf_token"] = csrf_token


def csrf_token() -> str:
    """The visitor's token (double-submit cookie: the form carries the cookie's value, which another
    site can neither read nor set), created on first use."""
    token = request.cookies.get(CSRF_COOKIE) or g.get("new_csrf_token")
    if not token:
        token = g.new_csrf_token = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Abort with 400 unless the form's token matches the cookie."""
    cookie, sent = request.cookies.get(CSRF_COOKIE, ""), request.form.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie, sent):
        abort(400, description="the form's security token is missing or stale: reload the page and try again")
