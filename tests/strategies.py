"""Hypothesis strategies: mixes of good and bad files, each with the outcome it implies."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from ocrstream.core.validation import identify_format
from tests.images import FORMATS, make_image, truncated

__all__ = ["GeneratedFile", "file_mixes", "files"]

#: The limits the generated files are judged against (see ``expected``).
MAX_FILES = 5
MAX_FILE_SIZE = 50_000


@dataclass(frozen=True, repr=False)
class GeneratedFile:
    """A file to upload and the validation outcome it must get (when within MAX_FILES)."""

    kind: str
    data: bytes
    expected: tuple[str, str]

    def __repr__(self) -> str:
        return f"GeneratedFile({self.kind!r}, <{len(self.data)} bytes {self.data[:16]!r}…>)"


@st.composite
def _valid(draw: st.DrawFn) -> GeneratedFile:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    size = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    return GeneratedFile("valid", make_image(fmt, size, mode), ("valid", fmt))


@st.composite
def _truncated(draw: st.DrawFn) -> GeneratedFile:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    return GeneratedFile(
        "truncated",
        truncated(make_image(fmt, (160, 160), FORMATS[fmt][0]), 0.5),
        ("invalid", "corrupt_image"),
    )


_random = (
    st.binary(min_size=1, max_size=2000)
    .filter(lambda data: identify_format(data[:64]) is None)
    .map(lambda data: GeneratedFile("random", data, ("invalid", "not_an_image")))
)
_empty = st.just(GeneratedFile("empty", b"", ("invalid", "empty_file")))
_oversize = st.integers(MAX_FILE_SIZE + 1, MAX_FILE_SIZE + 5000).map(
    lambda size: GeneratedFile(
        "oversize", make_image("PNG", (8, 8)) + b"\0" * size, ("invalid", "file_too_large")
    )
)

files = st.one_of(_valid(), _valid(), _truncated(), _random, _empty, _oversize)


def file_mixes(max_size: int = MAX_FILES + 3) -> st.SearchStrategy[list[GeneratedFile]]:
    """Lists of files, sometimes more than MAX_FILES."""
    return st.lists(files, min_size=1, max_size=max_size)


def expected_outcome(index: int, file: GeneratedFile) -> tuple[str, str]:
    """The outcome file ``index`` must get under the strategy's limits."""
    if index >= MAX_FILES:
        return ("invalid", "too_many_files")
    return file.expected
