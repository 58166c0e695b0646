from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core.names import MAX_NAME_LENGTH, sanitize_file_name


def test_last_path_component_of_either_separator() -> None:
    assert sanitize_file_name("C:\\Users\\me\\scan.png", file_index=0) == "scan.png"
    assert sanitize_file_name("../../etc/passwd", file_index=0) == "passwd"
    assert sanitize_file_name("a/b\\c.jpg", file_index=0) == "c.jpg"


def test_control_characters_are_removed() -> None:
    assert sanitize_file_name("in\r\nvoice\x00.png\x7f", file_index=0) == "invoice.png"
    assert sanitize_file_name("evil\u202egnp.exe", file_index=0) == "evilgnp.exe"


def test_empty_names_fall_back_to_the_index() -> None:
    assert sanitize_file_name("", file_index=3) == "file-3"
    assert sanitize_file_name(None, file_index=0) == "file-0"
    assert sanitize_file_name("dir/", file_index=7) == "file-7"
    assert sanitize_file_name("..", file_index=1) == "file-1"


def test_length_is_capped() -> None:
    assert len(sanitize_file_name("x" * 1000 + ".png", file_index=0)) == MAX_NAME_LENGTH


def test_markup_is_kept_as_data() -> None:
    name = "<img src=x onerror=alert(1)>.png"
    assert sanitize_file_name(name, file_index=0) == name


@given(st.text(), st.integers(min_value=0, max_value=10_000))
def test_any_name_becomes_a_safe_single_component(name: str, index: int) -> None:
    cleaned = sanitize_file_name(name, file_index=index)
    assert 0 < len(cleaned) <= MAX_NAME_LENGTH
    assert "/" not in cleaned
    assert "\\" not in cleaned
    assert all(ord(char) >= 0x20 and char != "\x7f" for char in cleaned)
