"""Browsers on other origins: CORS headers and the cross-site POST rule (SPEC).

Pure decisions over header values, so that they are tested without a server:

* :func:`origin_allowed`: whether an ``Origin`` may use the API (CORS_ORIGINS);
* :func:`preflight_headers` / :func:`response_headers`: the ``Access-Control-*``
  headers of a preflight and of an ordinary response (none for an origin not allowed,
  so the browser refuses);
* :func:`is_cross_site`: whether a POST comes from another site, by the rule of Go's
  ``http.CrossOriginProtection`` (Fetch Metadata first: ``Sec-Fetch-Site`` of
  ``cross-site`` or ``same-site``; from a browser that sends none, an ``Origin`` whose
  host and port are not the request's ``Host``). A request with neither header
  (curl, scripts) is not a browser's and is never cross-site.

See the Fetch standard, "CORS protocol", and W3C "Fetch Metadata Request Headers".
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = [
    "ALLOWED_HEADERS",
    "ALLOWED_METHODS",
    "EXPOSED_HEADERS",
    "PREFLIGHT_MAX_AGE",
    "is_cross_site",
    "normalise_origin",
    "origin_allowed",
    "preflight_headers",
    "response_headers",
]

#: Request headers a web app may send (the token, resuming, the upload's type).
ALLOWED_HEADERS = "Authorization, Last-Event-ID, Content-Type"
#: Methods of the API routes.
ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
#: Response headers a web app may read beyond the safelisted ones.
EXPOSED_HEADERS = "Location"
#: Seconds a browser may cache a preflight's answer.
PREFLIGHT_MAX_AGE = 600

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case with a default port left out, or None when
    ``value`` is not an HTTP(S) origin (a path, user info or query is not one)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """Whether ``origin`` (an ``Origin`` header) is in CORS_ORIGINS (``*``: any)."""
    if origin is None or not allowed:
        return False
    if "*" in allowed:
        return True
    return normalise_origin(origin) in allowed


def response_headers(origin: str | None, allowed: frozenset[str]) -> dict[str, str]:
    """The CORS headers of an ordinary response to a request from ``origin``."""
    if not origin_allowed(origin, allowed):
        return {}
    assert origin is not None
    if "*" in allowed:
        return {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        }
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin: str | None, allowed: frozenset[str]) -> dict[str, str]:
    """The headers of a preflight's 204 (none at all for an origin not allowed)."""
    headers = response_headers(origin, allowed)
    if headers:
        headers.update(
            {
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
            }
        )
    return headers


def is_cross_site(
    *, sec_fetch_site: str | None, origin: str | None, host: str | None, scheme: str
) -> bool:
    """Whether a browser sent this request from another site (Go's CrossOriginProtection).

    Args:
        sec_fetch_site: the ``Sec-Fetch-Site`` header, if any.
        origin: the ``Origin`` header, if any.
        host: the request's ``Host`` header (``host[:port]``).
        scheme: the request's scheme (``http`` or ``https``), for the default port.
    """
    if sec_fetch_site is not None and sec_fetch_site.strip():
        return sec_fetch_site.strip().lower() not in _SAME_ORIGIN_FETCH_SITES
    if origin is None or not origin.strip():
        return False
    if origin.strip() == "null":
        return True  # an opaque origin (a sandboxed frame, a data: page)
    from_origin = normalise_origin(origin)
    here = normalise_origin(f"{scheme}://{host}") if host else None
    if from_origin is None or here is None:
        return True
    # Host and port only: behind a TLS proxy the request reaches us over plain HTTP.
    return from_origin.split("://", 1)[1] != here.split("://", 1)[1]
