"""The web page for people at ``GET /`` (SPEC "Operations").

Plain files from ``ocrstream/http/static/`` (no build step, nothing from a CDN): the page
uploads with XMLHttpRequest, reads the SSE response as it arrives, and resumes with
``fetch`` from the last seq if the connection drops (EventSource cannot send the API
token). Only the files named here are served, each with
a fixed content type and ``Cache-Control: no-cache`` (revalidated through its ETag).
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, abort, send_from_directory

__all__ = ["PAGE_ASSETS", "web"]

#: Where the page's files live: next to this module, so they ship with the package.
_STATIC_DIR = Path(__file__).with_name("static")

#: No inline scripts or styles; images may be local previews (blob:) of picked files.
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'"
)

#: The files under /static/ and their content types (independent of /etc/mime.types).
PAGE_ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
}

web = Blueprint("web", __name__)


async def _send(name: str, mimetype: str) -> Response:
    response = await send_from_directory(_STATIC_DIR, name, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@web.get("/", endpoint="index")
async def _index() -> Response:
    """The page."""
    response = await _send("index.html", "text/html")
    response.headers["Content-Security-Policy"] = _CONTENT_SECURITY_POLICY
    return response


@web.get("/static/<name>", endpoint="static_file")
async def _static_file(name: str) -> Response:
    """The page's script and style sheet; any other name is 404."""
    mimetype = PAGE_ASSETS.get(name)
    if mimetype is None:
        abort(404)
    return await _send(name, mimetype)
