"""``GET /openapi.json`` and ``GET /docs``: the OpenAPI document and a page that renders it.

The document is built by the pure :func:`ocrstream.core.openapi.build_openapi` for this
server's settings, once per settings. The page is three static files under
``static/docs/`` (an HTML template with its script and style inlined, so that the
Content-Security-Policy can allow exactly them by hash); the hashes are computed when
this module loads, from the files as shipped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

from quart import Blueprint, Response, current_app

from ocrstream.core.openapi import build_openapi
from ocrstream.http.web import PAGE_ASSETS
from ocrstream.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

if TYPE_CHECKING:
    from ocrstream.core.config import Settings
    from ocrstream.http.app import OCRStreamApp

__all__ = ["DOCS_CSP", "docs_html", "docs_routes", "openapi_document"]

_DOCS_DIR = Path(__file__).with_name("static") / "docs"
_STYLE = (_DOCS_DIR / "docs.css").read_text(encoding="utf-8")
# Everything is rendered with textContent: nothing from the document becomes markup.
_SCRIPT = (_DOCS_DIR / "docs.js").read_text(encoding="utf-8")
_PAGE = (_DOCS_DIR / "docs.html").read_text(encoding="utf-8")


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


#: The Content-Security-Policy of ``GET /docs``: only its own script and style run.
DOCS_CSP = (
    "default-src 'none'; connect-src 'self'; "
    f"script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def docs_html() -> str:
    """The ``GET /docs`` page: renders ``/openapi.json`` in the browser, no CDN, no handlers."""
    return _PAGE.replace("{style}", _STYLE).replace("{script}", _SCRIPT)


def openapi_document(settings: Settings) -> dict[str, object]:
    """The OpenAPI document this server serves for ``settings``."""
    return build_openapi(
        settings, page_assets=PAGE_ASSETS, metrics_content_type=METRICS_CONTENT_TYPE
    )


@functools.lru_cache(maxsize=8)
def _document_bytes(settings: Settings) -> bytes:
    return json.dumps(openapi_document(settings), ensure_ascii=False).encode("utf-8")


docs_routes = Blueprint("openapi", __name__)


@docs_routes.get("/openapi.json", endpoint="openapi_document")
async def _openapi_document() -> Response:
    """``GET /openapi.json``: the document for this server's settings."""
    app = cast("OCRStreamApp", current_app)
    return Response(_document_bytes(app.state.settings), content_type="application/json")


@docs_routes.get("/docs", endpoint="docs")
async def _docs_page() -> Response:
    """``GET /docs``: the document as a web page."""
    return Response(
        docs_html(),
        content_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": DOCS_CSP},
    )
