"""The document model: page text joined by form feeds, JSON shape, proportional word boxes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core.documents import (
    Document,
    Line,
    Page,
    Word,
    document_from_json,
    split_words,
    with_words,
)


def _page(index: int, text: str) -> Page:
    line = with_words(Line(text=text, confidence=0.9, bbox=(10, 20, 110, 40)))
    return Page(
        page_index=index,
        source="ocr",
        width=200,
        height=100,
        dpi=None,
        text=text,
        lines=(line,),
    )


def test_a_documents_text_is_its_pages_joined_by_form_feeds() -> None:
    document = Document(
        file_index=0,
        file_name="a.pdf",
        format="PDF",
        page_count=2,
        pages=(_page(0, "a"), _page(1, "b")),
    )
    assert document.text == "a\fb"
    exported = document.to_json()
    assert exported["page_count"] == 2
    pages = exported["pages"]
    assert isinstance(pages, list)
    assert pages[1]["lines"][0]["words"] == [
        {"text": "b", "confidence": 0.9, "bbox": [10, 20, 110, 40]}
    ]


def test_words_are_boxed_in_proportion_to_their_characters() -> None:
    words = split_words("ab  cd", (0, 0, 60, 10), 0.5)
    assert words == (
        Word(text="ab", confidence=0.5, bbox=(0, 0, 20, 10)),
        Word(text="cd", confidence=0.5, bbox=(40, 0, 60, 10)),
    )


def test_a_line_with_its_own_words_keeps_them() -> None:
    own = Line(
        text="x y",
        confidence=1.0,
        bbox=(0, 0, 9, 9),
        words=(Word(text="x", confidence=1.0, bbox=(0, 0, 1, 1)),),
    )
    assert with_words(own) is own


@given(
    text=st.text(alphabet=st.sampled_from("ab <&\t"), max_size=30),
    x0=st.integers(0, 500),
    width=st.integers(0, 500),
)
def test_split_words_gives_the_lines_runs_without_spaces_inside_its_box(
    text: str, x0: int, width: int
) -> None:
    words = split_words(text, (x0, 5, x0 + width, 15), 1.0)
    assert [word.text for word in words] == text.split()
    for word in words:
        left, top, right, bottom = word.bbox
        assert x0 <= left <= right <= max(x0 + width, left + 1)
        assert (top, bottom) == (5, 15)
    lefts = [word.bbox[0] for word in words]
    assert lefts == sorted(lefts)


def test_a_document_comes_back_from_its_json() -> None:
    document = Document(
        file_index=3,
        file_name="a.pdf",
        format="PDF",
        page_count=2,
        pages=(_page(0, "a b"), _page(1, "c")),
    )
    assert document_from_json(json.loads(json.dumps(document.to_json()))) == document
