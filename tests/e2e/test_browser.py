"""The web page at ``GET /`` in a real browser (Debian's chromium, driven by Playwright).

The server runs as a subprocess (fake OCR engine, one worker) on a free loopback port;
Playwright's sync API drives a headless chromium against it. Skipped when chromium or
the ``playwright`` package is missing (CI installs both: ``apt-get install chromium``,
``pip install playwright``; ``playwright install`` is never needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import pytest

from tests.e2e.served import serve_in_subprocess
from tests.images import scripted_png, scripted_tiff
from tests.pdfs import born_digital

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
try:
    from playwright.sync_api import (
        Browser,
        ConsoleMessage,
        Dialog,
        FilePayload,
        Locator,
        Page,
        Request,
        Route,
        expect,
        sync_playwright,
    )
except ImportError:
    pytest.skip(
        "the playwright package is missing (pip install playwright)", allow_module_level=True
    )

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INVOICE = "Invoice 42\nTotal 9.99"
RECEIPT = "Receipt 7\nPaid 12.50"
HOSTILE = "<img src=x onerror=alert(1)>.png"
NOT_AN_IMAGE = "the bytes are not an image in any format known here"
TIMEOUT_MS = 15_000
API_TOKEN = "page-token-s3cret"
#: The three pages of ``born_digital()``, read from its text layer.
PDF_PAGES = [
    "Invoice number 2024-117\nTotal due: 1,250.00 EUR\nThank you for your business.",
    "Landscape page two",
    "small\nsquare page",
]
EXPORT_LABELS = {"txt": "TXT", "json": "JSON", "hocr": "hOCR", "alto": "ALTO", "pdf": "PDF"}


def _page_server(
    factory: pytest.TempPathFactory, name: str, **extra: str
) -> AbstractContextManager[str]:
    """A server subprocess on a free port (fake engine, one worker); SIGTERM on exit."""
    settings = {
        "OCRSTREAM_OCR_ENGINE": "fake",
        "OCRSTREAM_OCR_WORKERS": "1",
        "OCRSTREAM_SHUTDOWN_GRACE": "1",
        **extra,
    }
    return serve_in_subprocess(settings, log=factory.mktemp(name) / "server.log")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _page_server(tmp_path_factory, "browser") as url:
        yield url


@pytest.fixture(scope="module")
def guarded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server that needs OCRSTREAM_API_TOKEN on every /api/ route."""
    with _page_server(tmp_path_factory, "browser-token", OCRSTREAM_API_TOKEN=API_TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class PageProblems:
    """What must never happen on the page: dialogs, uncaught errors, console errors."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _png(name: str, text: str) -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": scripted_png(text)}


def _upload(page: Page, files: list[FilePayload]) -> None:
    page.goto("/")
    page.get_by_label("Images and PDFs to read").set_input_files(files)
    page.get_by_role("button", name="Upload").click()


def test_page_shows_each_file_live_and_renders_names_as_text(page: Page) -> None:
    problems = PageProblems(page)
    _upload(
        page,
        [
            _png("invoice.png", INVOICE),
            {"name": HOSTILE, "mimeType": "image/png", "buffer": b"not an image"},
            _png("receipt.png", RECEIPT),
        ],
    )
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "complete")
    expect(status).to_contain_text("Complete")
    expect(page.get_by_role("status")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#progress")).to_have_attribute("value", "100")
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    expect(page.locator("#rows > li")).to_have_count(3)

    for index, text in ((0, INVOICE), (2, RECEIPT)):
        row = page.locator(f'[data-file-index="{index}"]')
        expect(row).to_have_attribute("data-state", "done")
        assert row.locator(".file-text").text_content() == text
        expect(row.locator(".file-error")).to_be_hidden()

    bad = page.locator('[data-file-index="1"]')
    expect(bad).to_have_attribute("data-state", "invalid")
    assert bad.locator(".file-error").text_content() == NOT_AN_IMAGE
    expect(bad.locator(".file-text")).to_be_hidden()

    # The hostile name is text: no element was made of it, no script ran.
    assert bad.locator(".file-name").text_content() == HOSTILE
    assert bad.locator(".file-name *").count() == 0
    assert page.locator("img[src='x'], [onerror]").count() == 0
    assert problems.dialogs == []

    # Per-file actions: the .txt and .json downloads, and copying the text.
    first = page.locator('[data-file-index="0"]')
    with page.expect_download() as txt:
        first.get_by_role("button", name="Download the text of invoice.png").click()
    assert txt.value.suggested_filename == "invoice.txt"
    assert Path(txt.value.path()).read_text(encoding="utf-8") == INVOICE
    with page.expect_download() as json_download:
        bad.locator(".download-json").click()
    saved = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    assert saved["file_name"] == HOSTILE
    assert saved["error"]["code"] == "not_an_image"
    assert [event["type"] for event in saved["events"]] == [
        "image_received",
        "image_validation_start",
        "image_validation_error",
    ]
    first.locator(".copy").click()
    expect(page.locator("#notice")).to_have_text("Copied the text of invoice.png.")
    assert page.evaluate("navigator.clipboard.readText()") == INVOICE
    expect(status).to_contain_text("Complete")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser-upload.png", full_page=True)
    assert problems.errors == []


def test_page_resumes_from_the_last_seq_when_the_stream_drops(page: Page) -> None:
    """The upload's stream ends after three events: the page resumes from seq 2."""
    problems = PageProblems(page)
    watched: list[str] = []
    page.on("request", lambda request: watched.append(request.url))

    def cut_short(route: Route) -> None:
        response = route.fetch()  # the real upload, read to its end
        frames = response.text().split("\n\n")
        route.fulfill(response=response, body=": keep-alive\n\n" + "\n\n".join(frames[:3]) + "\n\n")

    page.route("**/api/ocr", cut_short)
    _upload(page, [_png("a.png", INVOICE), _png("b.png", RECEIPT)])
    expect(page.locator("#status")).to_have_attribute("data-state", "complete")
    for index, text in ((0, INVOICE), (1, RECEIPT)):
        row = page.locator(f'[data-file-index="{index}"]')
        expect(row).to_have_attribute("data-state", "done")
        assert row.locator(".file-text").text_content() == text
    resumes = [url for url in watched if "/events" in url]
    assert len(resumes) == 1
    assert resumes[0].endswith("/events?last_event_id=2")
    assert page.locator("#failure").is_hidden()
    assert problems.errors == []


def test_page_shows_a_refused_request_plainly(page: Page) -> None:
    problems = PageProblems(page)
    detail = "20 streams are open (MAX_STREAMS); retry shortly"
    problem = {"type": "about:blank", "title": "Service Unavailable", "status": 503}
    page.route(
        "**/api/ocr",
        lambda route: route.fulfill(
            status=503,
            content_type="application/problem+json",
            headers={"Retry-After": "1"},
            body=json.dumps({**problem, "detail": detail, "code": "service_busy"}),
        ),
    )
    _upload(page, [_png("a.png", INVOICE)])
    expect(page.locator("#status")).to_have_attribute("data-state", "failed")
    expect(page.get_by_role("alert")).to_contain_text(detail)
    expect(page.locator('[data-file-index="0"]')).to_have_attribute("data-state", "error")
    expect(page.get_by_role("button", name="Upload")).to_be_enabled()
    # The refusal is reported, not thrown; chromium logs the 503 itself.
    assert [error for error in problems.errors if "503" not in error] == []


def test_page_can_skip_ocr(page: Page) -> None:
    page.goto("/")
    page.get_by_label("Recognise text (OCR)").uncheck()
    page.get_by_label("Images and PDFs to read").set_input_files([_png("a.png", INVOICE)])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "complete")
    row = page.locator('[data-file-index="0"]')
    expect(row).to_have_attribute("data-state", "valid")
    expect(row.locator(".file-text")).to_be_hidden()
    expect(row.locator(".file-detail")).to_have_text("PNG, 60 \u00d7 20 px, 157 B")
    expect(page.locator("#progress")).to_have_attribute("value", "100")


def test_page_sends_the_api_token_on_upload_and_on_resume(
    browser: Browser, guarded_url: str
) -> None:
    context = browser.new_context(base_url=guarded_url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        problems = PageProblems(page)
        # No token: the server's 401 is shown plainly.
        _upload(page, [_png("a.png", INVOICE)])
        expect(page.locator("#status")).to_have_attribute("data-state", "failed")
        expect(page.get_by_role("alert")).to_contain_text("Authorization: Bearer")
        expect(page.get_by_role("alert")).to_contain_text("HTTP 401")
        # With the token, and a stream cut short after three events: both the upload and
        # the resume carry it, and the job completes.
        authorizations: dict[str, str | None] = {}
        page.on(
            "request",
            lambda request: authorizations.__setitem__(
                request.url, request.headers.get("authorization")
            ),
        )

        def cut_short(route: Route) -> None:
            response = route.fetch()
            frames = response.text().split("\n\n")
            route.fulfill(response=response, body="\n\n".join(frames[:3]) + "\n\n")

        page.route("**/api/ocr", cut_short)
        page.get_by_label("API token").fill(API_TOKEN)
        page.get_by_role("button", name="Upload").click()
        expect(page.locator("#status")).to_have_attribute("data-state", "complete")
        row = page.locator('[data-file-index="0"]')
        expect(row).to_have_attribute("data-state", "done")
        assert row.locator(".file-text").text_content() == INVOICE
        api = {url: value for url, value in authorizations.items() if "/api/" in url}
        assert any(url.endswith("/events?last_event_id=2") for url in api), api
        assert set(api.values()) == {f"Bearer {API_TOKEN}"}
        # Kept for the tab: a reload still has it.
        page.reload()
        expect(page.get_by_label("API token")).to_have_value(API_TOKEN)
        assert [e for e in problems.errors if "401" not in e] == []
    finally:
        context.close()


def test_page_works_through_nginx_with_a_5_mb_image(
    browser: Browser, base_url: str, tmp_path: Path
) -> None:
    from tests.e2e.nginx import NGINX, running_nginx

    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} is missing (apt-get install nginx)")
    photo = scripted_png(INVOICE, (1300, 1300), noise_seed=5)
    assert len(photo) > 5_000_000
    upstream = int(base_url.rsplit(":", 1)[1])
    with running_nginx(upstream, tmp_path / "nginx") as proxied:
        context = browser.new_context(base_url=proxied)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.new_page()
            problems = PageProblems(page)
            _upload(page, [{"name": "photo.png", "mimeType": "image/png", "buffer": photo}])
            expect(page.locator("#status")).to_have_attribute("data-state", "complete")
            row = page.locator('[data-file-index="0"]')
            expect(row).to_have_attribute("data-state", "done")
            assert row.locator(".file-text").text_content() == INVOICE
            assert problems.errors == []
        finally:
            context.close()


_POST_FROM_ELSEWHERE = """async ([url, mode]) => {
  const form = new FormData();
  form.append("files", new Blob([new Uint8Array([137, 80, 78, 71])], {type: "image/png"}), "a.png");
  try {
    const response = await fetch(url, {method: "POST", body: form, mode});
    return {status: response.status, text: mode === "cors" ? await response.text() : ""};
  } catch (error) {
    return {status: -1, text: String(error)};
  }
}"""


class Fetched(TypedDict):
    """What the page's ``fetch`` got: its status (0 opaque, -1 refused) and text."""

    status: int
    text: str


def _elsewhere(server_url: str) -> str:
    """Another site on the loopback address space: ``localhost`` where the API is
    ``127.0.0.1`` (Chromium refuses a public page's requests to loopback outright, which
    would hide the server's own answer)."""
    return server_url.replace("127.0.0.1", "localhost")


def _post_from_elsewhere(
    browser: Browser, page_url: str, api_url: str, mode: str
) -> tuple[int, Fetched]:
    """POST a file to ``api_url`` from a page at ``page_url`` (another site): (the status
    the server answered, as the network saw it, and what the page's fetch got)."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(page_url)  # a plain document of that origin, without the page's CSP
        with page.expect_response(lambda response: response.url == api_url) as answered:
            outcome = page.evaluate(_POST_FROM_ELSEWHERE, [api_url, mode])
        # The server's answer as the network saw it (the page itself may not read it).
        return answered.value.status, outcome
    finally:
        context.close()


def test_a_page_elsewhere_cannot_make_the_browser_upload(
    browser: Browser, base_url: str, guarded_url: str
) -> None:
    before = _uploads_started(base_url)
    elsewhere = f"{_elsewhere(guarded_url)}/healthz"
    # A "simple" cross-origin POST (no preflight) reaches the server: refused there.
    status, outcome = _post_from_elsewhere(browser, elsewhere, f"{base_url}/api/ocr", "no-cors")
    assert status == 403
    assert outcome["status"] == 0  # an opaque response: the page learns nothing
    assert _uploads_started(base_url) == before, "no job was created"


def test_a_listed_origin_can_upload_and_read_the_stream(
    browser: Browser, base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = _elsewhere(base_url)
    with _page_server(tmp_path_factory, "browser-cors", OCRSTREAM_CORS_ORIGINS=elsewhere) as url:
        status, outcome = _post_from_elsewhere(
            browser, f"{elsewhere}/healthz", f"{url}/api/ocr", "cors"
        )
    assert status == 200
    assert outcome["status"] == 200
    assert "event: processing_complete" in outcome["text"]


def _uploads_started(base_url: str) -> float:
    """``upload_started`` events the server has published (from /metrics)."""
    import httpx

    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith('ocrstream_events_total{type="upload_started"}'):
            return float(line.split()[-1])
    return 0.0


def _pdf(name: str) -> FilePayload:
    return {"name": name, "mimeType": "application/pdf", "buffer": born_digital()}


#: Records every text the ``.file-pages`` lines of the page show, in order (from the
#: mutation records themselves, so that texts replaced within one task are kept too).
_WATCH_PAGE_LINES = """() => {
  window.pageLines = [];
  new MutationObserver((records) => {
    for (const record of records) {
      if (!record.target.closest || !record.target.closest(".file-pages")) continue;
      for (const node of record.addedNodes) window.pageLines.push(node.textContent);
    }
  }).observe(document.getElementById("rows"), {childList: true, subtree: true});
}"""


def test_page_accepts_pdfs_and_tiffs(page: Page) -> None:
    page.goto("/")
    accept = page.get_by_label("Images and PDFs to read").get_attribute("accept") or ""
    assert set(accept.split(",")) == {"image/*", "application/pdf", ".pdf", ".tif", ".tiff"}
    expect(page.locator("main")).to_contain_text("images and PDFs")


def test_page_shows_a_pdf_page_by_page(page: Page) -> None:
    problems = PageProblems(page)
    page.goto("/")
    page.evaluate(_WATCH_PAGE_LINES)
    page.get_by_label("Images and PDFs to read").set_input_files([_pdf("invoice.pdf")])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "complete")
    row = page.locator('[data-file-index="0"]')
    expect(row).to_have_attribute("data-state", "done")
    expect(row.locator(".file-detail")).to_contain_text("PDF, 1654 \u00d7 2339 px")
    expect(row.locator(".file-detail")).to_contain_text("3 pages")
    expect(row.locator(".file-pages")).to_have_text("All 3 pages recognised")
    lines = page.evaluate("window.pageLines")
    assert [line for line in lines if line.startswith("Read page")] == [
        "Read page 1 of 3",
        "Read page 2 of 3",
        "Read page 3 of 3",
    ], lines
    # Each page's text, with a separator element (text, not markup) between pages.
    text = row.locator(".file-text")
    breaks = text.locator(".page-break")
    expect(breaks).to_have_text(["\u2014 page 2 \u2014", "\u2014 page 3 \u2014"])
    assert text.evaluate("el => [...el.childNodes].map(n => n.nodeType)") == [3, 1, 3, 1, 3]
    assert (
        text.evaluate("el => [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.data)")
        == PDF_PAGES
    )
    assert breaks.locator("*").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser-pdf.png", full_page=True)
    assert problems.errors == []


def test_page_says_which_page_failed(page: Page) -> None:
    tiff = scripted_tiff(["one", "FAIL here", "three"])
    _upload(page, [{"name": "scan.tiff", "mimeType": "image/tiff", "buffer": tiff}])
    expect(page.locator("#status")).to_have_attribute("data-state", "complete")
    row = page.locator('[data-file-index="0"]')
    expect(row).to_have_attribute("data-state", "error")
    expect(row.locator(".file-detail")).to_contain_text("3 pages")
    expect(row.locator(".file-error")).to_contain_text("Page 2 of 3 failed")
    expect(row.locator(".file-exports")).to_be_hidden()


def _export_link(page: Page, name: str, format: str) -> Locator:
    return page.get_by_role("link", name=f"Export {name} as {EXPORT_LABELS[format]}")


def test_page_offers_every_export_of_a_recognised_file(page: Page) -> None:
    problems = PageProblems(page)
    _upload(page, [_pdf("invoice.pdf"), _png("receipt.png", RECEIPT)])
    expect(page.locator("#status")).to_have_attribute("data-state", "complete")
    job_id = page.locator("#job-link").text_content()
    for index, name in enumerate(("invoice.pdf", "receipt.png")):
        for format in EXPORT_LABELS:
            link = _export_link(page, name, format)
            expect(link).to_have_attribute(
                "href", f"/api/ocr/{job_id}/files/{index}?format={format}"
            )
            expect(link).to_have_attribute("download", "")
    with page.expect_download() as txt:
        _export_link(page, "invoice.pdf", "txt").click()
    assert txt.value.suggested_filename == "invoice.txt"
    assert Path(txt.value.path()).read_text(encoding="utf-8") == "\f".join(PDF_PAGES)
    with page.expect_download() as pdf:
        _export_link(page, "invoice.pdf", "pdf").click()
    assert pdf.value.suggested_filename == "invoice.pdf"
    assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF-")
    with page.expect_download() as alto:
        _export_link(page, "receipt.png", "alto").click()
    assert alto.value.suggested_filename == "receipt.xml"
    assert 'CONTENT="Receipt"' in Path(alto.value.path()).read_text(encoding="utf-8")
    assert problems.errors == []


def test_page_fetches_exports_with_the_api_token(browser: Browser, guarded_url: str) -> None:
    context = browser.new_context(base_url=guarded_url, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        problems = PageProblems(page)
        page.goto("/")
        page.get_by_label("API token").fill(API_TOKEN)
        _upload(page, [_pdf("invoice.pdf")])  # the token is kept across the reload
        expect(page.locator("#status")).to_have_attribute("data-state", "complete")
        exports: list[str | None] = []

        def watch(request: Request) -> None:
            if "/files/" in request.url:
                exports.append(request.headers.get("authorization"))

        page.on("request", watch)
        with page.expect_download() as txt:
            _export_link(page, "invoice.pdf", "txt").click()
        assert txt.value.suggested_filename == "invoice.txt"
        assert Path(txt.value.path()).read_text(encoding="utf-8") == "\f".join(PDF_PAGES)
        with page.expect_download() as pdf:
            _export_link(page, "invoice.pdf", "pdf").click()
        assert pdf.value.suggested_filename == "invoice.pdf"
        assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF-")
        assert exports == [f"Bearer {API_TOKEN}"] * 2
        expect(page.locator("#notice")).to_have_text("Downloaded the PDF of invoice.pdf.")
        assert problems.errors == []
    finally:
        context.close()
