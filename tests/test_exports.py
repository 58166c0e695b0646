"""The text exports: hOCR and ALTO parsed back, hostile names and text, Content-Disposition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from ocrstream.core.documents import Document, Line, Page, Word
from ocrstream.core.exports import (
    ALTO_NAMESPACE,
    EXPORT_FORMATS,
    content_disposition,
    to_alto,
    to_hocr,
    to_text,
)

XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO = f"{{{ALTO_NAMESPACE}}}"
DATA = Path(__file__).parent / "data"
HOSTILE_NAME = 'a"<b>&c\u0007.png'
#: What XML can carry of it: every character but the BEL.
HOSTILE_NAME_IN_XML = 'a"<b>&c.png'
HOSTILE_TEXT = 'x<y &amp; "q" é€'

#: A stand-in for the W3C xlink schema the ALTO schema imports (no network in tests).
XLINK_STUB = b"""<?xml version="1.0"?>
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    targetNamespace="http://www.w3.org/1999/xlink">
  <xsd:attributeGroup name="simpleLink">
    <xsd:attribute name="type" form="qualified" type="xsd:string"/>
    <xsd:attribute name="href" form="qualified" type="xsd:anyURI"/>
    <xsd:attribute name="role" form="qualified" type="xsd:string"/>
    <xsd:attribute name="arcrole" form="qualified" type="xsd:string"/>
    <xsd:attribute name="title" form="qualified" type="xsd:string"/>
    <xsd:attribute name="show" form="qualified" type="xsd:string"/>
    <xsd:attribute name="actuate" form="qualified" type="xsd:string"/>
  </xsd:attributeGroup>
</xsd:schema>
"""


def _document(file_name: str = "scan.png", text: str = "Hello big world") -> Document:
    boxed = Line(
        text="two words",
        confidence=0.5,
        bbox=(20, 60, 220, 90),
        words=(
            Word(text="two", confidence=1.2, bbox=(20, 60, 90, 90)),
            Word(text="words", confidence=-0.1, bbox=(110, 62, 220, 90)),
        ),
    )
    unboxed = Line(text=text, confidence=0.87, bbox=(10, 10, 290, 40))
    pages = (
        Page(
            page_index=0,
            source="ocr",
            width=300,
            height=100,
            dpi=150.0,
            text=f"{text}\ntwo words",
            lines=(unboxed, boxed, Line(text="  ", confidence=0.1, bbox=(0, 0, 5, 5))),
        ),
        Page(page_index=1, source="text_layer", width=200, height=400, dpi=None, text="", lines=()),
    )
    return Document(file_index=3, file_name=file_name, format="PNG", page_count=2, pages=pages)


def _title(element: etree._Element) -> dict[str, str]:
    """hOCR properties: ``name value``, separated by ``;`` outside double-quoted strings."""
    title = element.get("title") or ""
    properties = {}
    for match in re.finditer(r'\s*(\w+)\s+((?:"(?:[^"\\]|\\.)*"|[^;])*)(?:;|$)', title):
        properties[match.group(1)] = match.group(2).strip()
    return properties


def _unquote(value: str) -> str:
    assert value.startswith('"')
    assert value.endswith('"')
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def _ints(value: str) -> list[int]:
    return [int(part) for part in value.split()]


def test_the_formats_are_specs_table() -> None:
    assert EXPORT_FORMATS == {
        "json": ("application/json", "json"),
        "txt": ("text/plain; charset=utf-8", "txt"),
        "hocr": ("text/html; charset=utf-8", "hocr"),
        "alto": ("application/xml", "xml"),
        "pdf": ("application/pdf", "pdf"),
    }


def test_text_is_the_pages_joined_by_form_feeds() -> None:
    assert to_text(_document()) == "Hello big world\ntwo words\f"


def test_hocr_parses_back_with_pages_lines_and_words() -> None:
    root = etree.fromstring(to_hocr(_document()))
    metas = {m.get("name"): m.get("content") for m in root.iter(f"{XHTML}meta")}
    assert str(metas["ocr-system"]).startswith("ocrstream ")
    assert metas["ocr-capabilities"] == "ocr_page ocr_line ocrx_word"
    pages = root.findall(f".//{XHTML}div[@class='ocr_page']")
    assert [_ints(_title(p)["ppageno"])[0] for p in pages] == [0, 1]
    first = _title(pages[0])
    assert _unquote(first["image"]) == "scan.png"
    assert _ints(first["bbox"]) == [0, 0, 300, 100]
    assert _ints(_title(pages[1])["bbox"]) == [0, 0, 200, 400]
    lines = pages[0].findall(f"{XHTML}span[@class='ocr_line']")
    assert len(lines) == 3  # the blank line is kept, with no words
    words = pages[0].findall(f".//{XHTML}span[@class='ocrx_word']")
    assert [w.text for w in words] == ["Hello", "big", "world", "two", "words"]
    for word in words:
        x0, y0, x1, y1 = _ints(_title(word)["bbox"])
        assert 0 <= x0 < x1 <= 300
        assert 0 <= y0 < y1 <= 100
        assert 0 <= int(_title(word)["x_wconf"]) <= 100
    assert [_title(w)["x_wconf"] for w in words] == ["87", "87", "87", "100", "0"]
    # The words of a line read as its text.
    assert "".join(str(part) for part in lines[1].itertext()) == "two words"


def test_alto_parses_back_and_validates_against_the_alto_4_4_schema(tmp_path: Path) -> None:
    data = to_alto(_document())
    root = etree.fromstring(data)
    assert root.tag == f"{ALTO}alto"
    assert root.findtext(f"{ALTO}Description/{ALTO}MeasurementUnit") == "pixel"
    assert root.findtext(f".//{ALTO}sourceImageInformation/{ALTO}fileName") == "scan.png"
    software = root.findtext(f".//{ALTO}OCRProcessing//{ALTO}softwareName")
    assert software == "ocrstream"
    location = root.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation") or ""
    assert location.split()[0] == ALTO_NAMESPACE
    assert location.endswith("alto-4-4.xsd")
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    assert [(p.get("PHYSICAL_IMG_NR"), p.get("WIDTH"), p.get("HEIGHT")) for p in pages] == [
        ("1", "300", "100"),
        ("2", "200", "400"),
    ]
    lines = pages[0].findall(f"{ALTO}PrintSpace/{ALTO}TextBlock/{ALTO}TextLine")
    assert len(lines) == 2  # the blank line has no word, so no TextLine
    children = [child.tag.removeprefix(ALTO) for child in lines[0]]
    assert children == ["String", "SP", "String", "SP", "String"]
    strings = pages[0].findall(f".//{ALTO}String")
    assert [s.get("CONTENT") for s in strings] == ["Hello", "big", "world", "two", "words"]
    for string in strings:
        hpos, vpos, width, height = (
            int(string.get(k) or "") for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")
        )
        assert 0 <= hpos < hpos + width <= 300
        assert 0 <= vpos < vpos + height <= 100
        assert 0.0 <= float(string.get("WC") or "") <= 1.0
    assert [s.get("WC") for s in strings[-2:]] == ["1", "0"]
    _alto_schema(tmp_path).assertValid(root)


def _alto_schema(tmp_path: Path) -> etree.XMLSchema:
    # The schema imports the W3C xlink schema by URL: point the import at a local stand-in.
    stub = tmp_path / "xlink.xsd"
    stub.write_bytes(XLINK_STUB)
    schema = (DATA / "alto-4-4.xsd").read_bytes()
    schema = schema.replace(b"http://www.loc.gov/standards/xlink/xlink.xsd", stub.as_uri().encode())
    parser = etree.XMLParser(no_network=True)
    return etree.XMLSchema(etree.fromstring(schema, parser))


def test_a_hostile_name_and_text_survive_every_format(tmp_path: Path) -> None:
    document = _document(HOSTILE_NAME, HOSTILE_TEXT)
    assert to_text(document).startswith(HOSTILE_TEXT)

    hocr = etree.fromstring(to_hocr(document))
    page = hocr.find(f".//{XHTML}div[@class='ocr_page']")
    assert page is not None
    assert _unquote(_title(page)["image"]) == HOSTILE_NAME_IN_XML
    assert _ints(_title(page)["ppageno"]) == [0]
    assert hocr.findtext(f".//{XHTML}title") == HOSTILE_NAME_IN_XML
    words = [str(w.text) for w in hocr.iter(f"{XHTML}span") if w.get("class") == "ocrx_word"]
    assert " ".join(words[:4]) == HOSTILE_TEXT

    alto = etree.fromstring(to_alto(document))
    assert alto.findtext(f".//{ALTO}fileName") == HOSTILE_NAME_IN_XML
    contents = [s.get("CONTENT") for s in alto.iter(f"{ALTO}String")]
    assert " ".join(str(c) for c in contents[:4]) == HOSTILE_TEXT
    _alto_schema(tmp_path).assertValid(alto)


def test_characters_xml_cannot_carry_are_dropped_not_fatal() -> None:
    text = "a\x00b\x1bc\ud800d\uffffe\tf"
    document = _document("n\x01a\x7fme.png", text)
    hocr = etree.fromstring(to_hocr(document))
    words = [w.text for w in hocr.iter(f"{XHTML}span") if w.get("class") == "ocrx_word"]
    assert words[:2] == ["abcde", "f"]
    alto = etree.fromstring(to_alto(document))
    assert alto.findtext(f".//{ALTO}fileName") == "na\x7fme.png"


@pytest.mark.parametrize(
    ("name", "extension", "expected"),
    [
        ("scan.png", "txt", 'attachment; filename="scan.txt"'),
        ("report.final.pdf", "pdf", 'attachment; filename="report.final.pdf"'),
        ("README", "json", 'attachment; filename="README.json"'),
        ("", "xml", 'attachment; filename="file.xml"'),
        ("..", "xml", 'attachment; filename="file.xml"'),
        ("file-3", "hocr", 'attachment; filename="file-3.hocr"'),
        (
            'a"b\\c.png',
            "txt",
            'attachment; filename="c.txt"',
        ),
        (
            'say "hi".png',
            "txt",
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
        ),
        (
            "été €.tiff",
            "xml",
            "attachment; filename=\"ete _.xml\"; filename*=UTF-8''%C3%A9t%C3%A9%20%E2%82%AC.xml",
        ),
        (
            "日本.png",
            "pdf",
            "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.pdf",
        ),
        (
            "100%41.png",
            "txt",
            "attachment; filename=\"100_41.txt\"; filename*=UTF-8''100%2541.txt",
        ),
        ("dir/sub\\x.tar.gz", "txt", 'attachment; filename="x.tar.txt"'),
        ("bell\u0007\r\n.png", "txt", 'attachment; filename="bell.txt"'),
    ],
)
def test_content_disposition(name: str, extension: str, expected: str) -> None:
    header = content_disposition(name, extension)
    assert header == expected
    header.encode("ascii")  # a header value: ASCII only, no CR or LF
    assert "\r" not in header
    assert "\n" not in header
