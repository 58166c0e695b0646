from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core import events as ev
from ocrstream.core.envelope import Envelope
from ocrstream.core.sse import KEEPALIVE, encode, encode_comment
from tests.sse_reading import SSEDecoder, encode_all

MOMENT = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)


def _received(name: str, seq: int = 1) -> Envelope:
    return Envelope(
        event=ev.ImageReceived(file_index=0, file_name=name, size_bytes=3, content_type=None),
        job_id="j",
        seq=seq,
        timestamp=MOMENT,
    )


def test_frame_is_byte_exact() -> None:
    envelope = Envelope(
        event=ev.UploadStarted(file_count=1, total_bytes=3), job_id="j", seq=0, timestamp=MOMENT
    )
    assert encode(envelope) == (
        b"id: 0\n"
        b"event: upload_started\n"
        b'data: {"type":"upload_started","timestamp":"2026-01-02T03:04:05.006Z",'
        b'"job_id":"j","seq":0,"data":{"file_count":1,"total_bytes":3}}\n'
        b"\n"
    )


def test_frame_id_override_and_omission() -> None:
    envelope = _received("a")
    assert encode(envelope, frame_id=99).startswith(b"id: 99\nevent: image_received\n")
    assert encode(envelope, with_id=False).startswith(b"event: image_received\n")


def test_keepalive_and_comments() -> None:
    assert KEEPALIVE == b": keep-alive\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"


def test_a_hostile_file_name_cannot_forge_a_frame() -> None:
    name = 'x"\n\nevent: processing_complete\ndata: {}\r\n\r\n'
    decoder = SSEDecoder()
    messages = decoder.feed(encode(_received(name)))
    assert len(messages) == 1
    assert messages[0].event == "image_received"
    assert json.loads(messages[0].data)["data"]["file_name"] == name


def test_coalesced_frames_decode_in_order() -> None:
    chunk = encode_all(_received(f"f{i}", seq=i) for i in range(5))
    messages = SSEDecoder().feed(chunk)
    assert [m.id for m in messages] == ["0", "1", "2", "3", "4"]


def test_decoder_handles_every_line_ending_and_comments() -> None:
    decoder = SSEDecoder()
    messages = decoder.feed(b": hi\r\nid: 7\revent: x\r\ndata: a\ndata: b\n\n")
    assert decoder.comments == 1
    assert [(m.event, m.data, m.id) for m in messages] == [("x", "a\nb", "7")]


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_decoder_is_split_agnostic(name: str, piece: int) -> None:
    frames = encode(_received(name)) + KEEPALIVE + encode(_received(name + "2", seq=2))
    whole = SSEDecoder().feed(frames)
    decoder = SSEDecoder()
    split = []
    for start in range(0, len(frames), piece):
        split.extend(decoder.feed(frames[start : start + piece]))
    assert split == whole
    assert [json.loads(m.data)["data"]["file_name"] for m in split] == [name, name + "2"]
    assert decoder.comments == 1
