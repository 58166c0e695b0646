"""The text exports of a recognised file (SPEC "Results and exports"): plain text, hOCR 1.2
and ALTO 4.4, their media types and extensions, and the ``Content-Disposition`` they carry.

Pure: the XML is built with lxml's element tree, never by joining strings, so a hostile
file name or recognised text (``<``, ``&``, ``"``) is escaped by the serialiser. Characters
that XML 1.0 cannot carry at all (C0 controls other than TAB, LF and CR; lone surrogates;
U+FFFE and U+FFFF) are dropped from names and text alike. The searchable PDF is built in a
worker process by :mod:`ocrstream.documents.searchable`; only its media type is here.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import quote

from lxml import etree

from ocrstream.core.documents import Bbox, Document, Line, Page, Word, with_words
from ocrstream.version import __version__

__all__ = [
    "ALTO_NAMESPACE",
    "ALTO_SCHEMA_LOCATION",
    "EXPORT_FORMATS",
    "ExportFormat",
    "content_disposition",
    "to_alto",
    "to_hocr",
    "to_text",
]

ExportFormat = tuple[str, str]
#: ``format=`` value → (Content-Type, file extension), as SPEC's table has them.
EXPORT_FORMATS: Final[dict[str, ExportFormat]] = {
    "json": ("application/json", "json"),
    "txt": ("text/plain; charset=utf-8", "txt"),
    "hocr": ("text/html; charset=utf-8", "hocr"),
    "alto": ("application/xml", "xml"),
    "pdf": ("application/pdf", "pdf"),
}

ALTO_NAMESPACE: Final = "http://www.loc.gov/standards/alto/ns-v4#"
#: Where the ALTO 4.4 schema is published (the ``xsi:schemaLocation`` of every ALTO export).
ALTO_SCHEMA_LOCATION: Final = "http://www.loc.gov/alto/v4/alto-4-4.xsd"

_XHTML_NAMESPACE: Final = "http://www.w3.org/1999/xhtml"
_XSI_NAMESPACE: Final = "http://www.w3.org/2001/XMLSchema-instance"
_XLINK_NAMESPACE: Final = "http://www.w3.org/1999/xlink"
_HOCR_DOCTYPE: Final = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">'
)
_OCR_SYSTEM: Final = f"ocrstream {__version__}"
#: What may not appear in XML 1.0 at all (its ``Char`` production), escaped or not.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: RFC 5987 ``attr-char`` beyond the letters and digits, which ``quote`` always keeps.
_ATTR_CHAR_PUNCTUATION: Final = "!#$&+-.^_`|~"
#: A percent sign and two hex digits: some user agents decode them even in ``filename=``
#: (RFC 6266 appendix D), so the quoted fallback must not hold one.
_PERCENT_ESCAPE: Final = re.compile("%(?=[0-9A-Fa-f]{2})")
_FALLBACK_STEM: Final = "file"


def content_disposition(file_name: str, extension: str) -> str:
    """The ``Content-Disposition`` of an export of ``file_name`` (SPEC "Results and exports").

    The stem is the name's last path component without its last suffix (``scan.tiff`` →
    ``scan``), without control characters; ``file`` when nothing is left. The quoted
    ``filename`` is an ASCII fallback (accents dropped, other non-ASCII characters, ``"``
    and ``\\`` replaced by ``_``); when it differs from the real name, RFC 6266's
    ``filename*`` carries the name in UTF-8, percent-encoded per RFC 5987.

    Args:
        file_name: the file's (already sanitised) name.
        extension: the export's extension, one of :data:`EXPORT_FORMATS`' (ASCII).

    Returns:
        The header's value, e.g. ``attachment; filename="scan.hocr"``.
    """
    last = re.split(r"[/\\]", file_name)[-1]
    visible = "".join(c for c in last if unicodedata.category(c) not in {"Cc", "Cf"}).strip()
    stem, dot, _suffix = visible.rpartition(".")
    if not dot or not stem.strip("."):
        # No suffix (``README``), or only a leading dot (``.profile``): the whole name.
        stem = visible
    stem = stem.strip() if visible.strip(".") else ""
    stem = stem or _FALLBACK_STEM
    full = f"{stem}.{extension}"
    fallback = _ascii_fallback(full)
    header = f'attachment; filename="{fallback}"'
    if fallback != full:
        header += f"; filename*=UTF-8''{quote(full, safe=_ATTR_CHAR_PUNCTUATION)}"
    return header


def _ascii_fallback(name: str) -> str:
    # NFKD splits "é" into "e" and a combining accent, which the ASCII encoding drops.
    decomposed = unicodedata.normalize("NFKD", name)
    kept = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue
        printable = " " <= char <= "~" and char not in {'"', "\\"}
        kept.append(char if printable else "_")
    return _PERCENT_ESCAPE.sub("_", "".join(kept))


def to_text(document: Document) -> str:
    """The ``format=txt`` export: every page's text, pages separated by a form feed.

    Args:
        document: the recognised file.
    """
    return document.text


def to_hocr(document: Document) -> bytes:
    """The ``format=hocr`` export: an hOCR 1.2 XHTML document, UTF-8.

    One ``div.ocr_page`` per page (``image "<file_name>"; bbox 0 0 W H; ppageno N``, N
    from 0, plus ``scan_res`` when the page has a DPI), a ``span.ocr_line`` per line
    (``bbox``) and a ``span.ocrx_word`` per word (``bbox ...; x_wconf NN``, NN in 0..100).
    In the ``image`` property the name is a double-quoted string in which ``\\`` and
    ``"`` are escaped with a backslash. Lines whose engine gave no word boxes get
    proportional ones (:func:`~ocrstream.core.documents.with_words`).

    Args:
        document: the recognised file.
    """
    h = f"{{{_XHTML_NAMESPACE}}}"
    # lxml-stubs type nsmap keys as str, but None (the default namespace) is what lxml wants.
    html = etree.Element(f"{h}html", nsmap={None: _XHTML_NAMESPACE})  # type: ignore[dict-item]
    html.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    head = etree.SubElement(html, f"{h}head")
    etree.SubElement(head, f"{h}title").text = _xml_text(document.file_name)
    _meta(head, {"http-equiv": "Content-Type", "content": "text/html; charset=utf-8"})
    _meta(head, {"name": "ocr-system", "content": _OCR_SYSTEM})
    _meta(head, {"name": "ocr-capabilities", "content": "ocr_page ocr_line ocrx_word"})
    _meta(head, {"name": "ocr-number-of-pages", "content": str(len(document.pages))})
    body = etree.SubElement(html, f"{h}body")
    image = _hocr_string(document.file_name)
    for page in document.pages:
        number = page.page_index
        title = f"image {image}; bbox 0 0 {page.width} {page.height}; ppageno {number}"
        if page.dpi:
            title += f"; scan_res {round(page.dpi)} {round(page.dpi)}"
        div = etree.SubElement(
            body, f"{h}div", {"class": "ocr_page", "id": f"page_{number}", "title": title}
        )
        for line_number, line in enumerate(_lines(page)):
            line_id = f"{number}_{line_number}"
            span = etree.SubElement(
                div,
                f"{h}span",
                {"class": "ocr_line", "id": f"line_{line_id}", "title": _bbox(line.bbox)},
            )
            previous: etree._Element | None = None
            for word_number, word in enumerate(line.words):
                if previous is not None:
                    previous.tail = " "
                previous = etree.SubElement(
                    span,
                    f"{h}span",
                    {
                        "class": "ocrx_word",
                        "id": f"word_{line_id}_{word_number}",
                        "title": f"{_bbox(word.bbox)}; x_wconf {_percent(word.confidence)}",
                    },
                )
                previous.text = _xml_text(word.text)
    return etree.tostring(
        html, xml_declaration=True, encoding="UTF-8", doctype=_HOCR_DOCTYPE, pretty_print=True
    )


def to_alto(document: Document) -> bytes:
    """The ``format=alto`` export: an ALTO 4.4 document, UTF-8, in pixels.

    ``Description`` holds ``MeasurementUnit`` ``pixel``, ``sourceImageInformation/fileName``
    (the file_name) and an ``OCRProcessing`` naming ocrstream. Each page is a ``Page``
    (``PHYSICAL_IMG_NR`` from 1) with one ``PrintSpace`` and one ``TextBlock`` holding its
    lines as ``TextLine``, each word a ``String`` (``CONTENT``, ``WC`` in 0..1) with an
    ``SP`` between words. Lines without any word are left out.

    Args:
        document: the recognised file.
    """
    a = f"{{{ALTO_NAMESPACE}}}"
    alto = etree.Element(
        f"{a}alto",
        nsmap={None: ALTO_NAMESPACE, "xlink": _XLINK_NAMESPACE, "xsi": _XSI_NAMESPACE},  # type: ignore[dict-item]
    )
    alto.set(f"{{{_XSI_NAMESPACE}}}schemaLocation", f"{ALTO_NAMESPACE} {ALTO_SCHEMA_LOCATION}")
    description = etree.SubElement(alto, f"{a}Description")
    etree.SubElement(description, f"{a}MeasurementUnit").text = "pixel"
    source = etree.SubElement(description, f"{a}sourceImageInformation")
    etree.SubElement(source, f"{a}fileName").text = _xml_text(document.file_name)
    processing = etree.SubElement(description, f"{a}OCRProcessing", ID="OCR_0")
    step = etree.SubElement(processing, f"{a}ocrProcessingStep")
    software = etree.SubElement(step, f"{a}processingSoftware")
    etree.SubElement(software, f"{a}softwareName").text = "ocrstream"
    etree.SubElement(software, f"{a}softwareVersion").text = __version__
    layout = etree.SubElement(alto, f"{a}Layout")
    for page in document.pages:
        number = page.page_index
        page_element = etree.SubElement(
            layout,
            f"{a}Page",
            ID=f"page_{number}",
            PHYSICAL_IMG_NR=str(number + 1),
            WIDTH=str(page.width),
            HEIGHT=str(page.height),
        )
        space = etree.SubElement(
            page_element, f"{a}PrintSpace", _alto_box((0, 0, page.width, page.height))
        )
        lines = [line for line in _lines(page) if line.words]
        if not lines:
            continue
        block = etree.SubElement(
            space, f"{a}TextBlock", {"ID": f"block_{number}", **_alto_box(_union(lines))}
        )
        for line_number, line in enumerate(lines):
            line_id = f"{number}_{line_number}"
            text_line = etree.SubElement(
                block, f"{a}TextLine", {"ID": f"line_{line_id}", **_alto_box(line.bbox)}
            )
            for word_number, word in enumerate(line.words):
                if word_number:
                    _alto_space(text_line, line.words[word_number - 1], word)
                attributes = {
                    "ID": f"word_{line_id}_{word_number}",
                    **_alto_box(word.bbox),
                    "CONTENT": _xml_text(word.text),
                    "WC": _decimal(word.confidence),
                }
                etree.SubElement(text_line, f"{a}String", attributes)
    return etree.tostring(alto, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _xml_text(text: str) -> str:
    return _NOT_XML_CHAR.sub("", text)


def _hocr_string(text: str) -> str:
    # hOCR property values are separated by ";" and spaces: the name goes in double quotes,
    # its own quotes and backslashes escaped, TAB/CR/LF (legal in XML) made spaces.
    cleaned = re.sub(r"[\t\r\n]", " ", _xml_text(text))
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _meta(head: etree._Element, attributes: dict[str, str]) -> None:
    etree.SubElement(head, f"{{{_XHTML_NAMESPACE}}}meta", attributes)


def _lines(page: Page) -> list[Line]:
    return [with_words(line) for line in page.lines]


def _bbox(box: Bbox) -> str:
    return "bbox {} {} {} {}".format(*box)


def _percent(confidence: float) -> int:
    return round(min(1.0, max(0.0, confidence)) * 100)


def _decimal(confidence: float) -> str:
    return format(round(min(1.0, max(0.0, confidence)), 4), "g")


def _alto_box(box: Bbox) -> dict[str, str]:
    x0, y0, x1, y1 = box
    return {
        "HPOS": str(x0),
        "VPOS": str(y0),
        "WIDTH": str(max(0, x1 - x0)),
        "HEIGHT": str(max(0, y1 - y0)),
    }


def _alto_space(text_line: etree._Element, before: Word, after: Word) -> None:
    left = before.bbox[2]
    etree.SubElement(
        text_line,
        f"{{{ALTO_NAMESPACE}}}SP",
        HPOS=str(left),
        VPOS=str(min(before.bbox[1], after.bbox[1])),
        WIDTH=str(max(0, after.bbox[0] - left)),
    )


def _union(lines: list[Line]) -> Bbox:
    return (
        min(line.bbox[0] for line in lines),
        min(line.bbox[1] for line in lines),
        max(line.bbox[2] for line in lines),
        max(line.bbox[3] for line in lines),
    )
