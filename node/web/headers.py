"""Security headers sent with every answer (``SecurityHeadersMiddleware``) and with
the answers built before the middleware runs (the inbox's fast path, error pages)."""

from __future__ import annotations

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATIC_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "permissions-policy": "geolocation=(), camera=(), microphone=()",
}
# URLs that serve the HTML page or the ActivityStreams document depending on Accept
# (federation.negotiation): caches must never hand one to a client asking for the other.
NEGOTIATED_PREFIXES = ("/u/", "/c/", "/t/", "/p/")


def session_cookie(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value: never readable by scripts, not sent on cross-site POSTs."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)
