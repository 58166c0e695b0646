"""Browsers on other origins (SPEC): preflights, CORS headers, cross-site POSTs refused.

Three request hooks around the routes, the decisions themselves in
:mod:`ocrstream.core.cors`:

* a preflight (``OPTIONS``) on an API route answers 204 at once, before any token is
  looked at, with the ``Access-Control-Allow-*`` headers for an allowed origin and
  none for another (so the browser refuses);
* a ``POST`` that a browser marks as coming from another site is refused with 403
  before its body is read and before its token is looked at, unless its origin is
  in CORS_ORIGINS: a page elsewhere cannot make a visitor's browser upload;
* every response to an allowed origin carries ``Access-Control-Allow-Origin`` and
  exposes ``Location``.

The routes these apply to are the API's (``/api/``) and ``/openapi.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response, request

from ocrstream.core.cors import (
    is_cross_site,
    origin_allowed,
    preflight_headers,
    response_headers,
)
from ocrstream.core.errors import CrossOriginRefused
from ocrstream.http.problems import no_content

if TYPE_CHECKING:
    from quart import Quart

__all__ = ["add_browser_rules", "covered"]


def covered(path: str) -> bool:
    """Whether ``path`` is one that web apps on other origins may use."""
    return path.startswith("/api/") or path == "/openapi.json"


def add_browser_rules(app: Quart, allowed: frozenset[str]) -> None:
    """Register the hooks on ``app``, ahead of every other ``before_request`` hook.

    Args:
        app: the app; call this before registering the token check.
        allowed: CORS_ORIGINS.
    """

    @app.before_request
    async def preflight_or_refuse() -> Response | None:
        if not covered(request.path):
            return None
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and request.url_rule is not None:
            headers = preflight_headers(origin, allowed)
            methods = request.url_rule.methods or set()
            headers["Allow"] = ", ".join(sorted(methods))
            return no_content(headers)
        if request.method == "POST" and not origin_allowed(origin, allowed):
            cross_site = is_cross_site(
                sec_fetch_site=request.headers.get("Sec-Fetch-Site"),
                origin=origin,
                host=request.headers.get("Host"),
                scheme=request.scheme,
            )
            if cross_site:
                raise CrossOriginRefused(
                    "a browser sent this upload from another site, whose origin is not "
                    "in CORS_ORIGINS; the request was refused"
                )
        return None

    @app.after_request
    async def cors_headers(response: Response) -> Response:
        if covered(request.path):
            for name, value in response_headers(request.headers.get("Origin"), allowed).items():
                if name == "Vary":
                    response.vary.add("Origin")
                else:
                    response.headers[name] = value
        return response
