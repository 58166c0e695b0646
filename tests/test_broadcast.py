"""The firehose ring: order, no duplicates, and gaps only where stream_lagged says."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core import events as ev
from ocrstream.core.envelope import Envelope
from ocrstream.service.memory.broadcast import Broadcaster, RingCursor
from tests.cursors import take_batch
from tests.sse_reading import SSEDecoder

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


def _envelope(n: int) -> Envelope:
    return Envelope(event=ev.UploadStarted(file_count=1, total_bytes=n), job_id="j", seq=n)


async def test_ids_start_from_boot_time_and_increase() -> None:
    first = Broadcaster(10)
    later = Broadcaster(10)
    assert later.boot_id >= first.boot_id
    assert first.publish(_envelope(0)) == first.boot_id
    assert first.publish(_envelope(1)) == first.boot_id + 1


async def test_a_reader_that_fell_behind_is_told_how_much_it_missed() -> None:
    ring = Broadcaster(5, first_id=1000)
    with ring.subscribe() as reader:
        for n in range(12):  # 12 published, ring holds the last 5
            ring.publish(_envelope(n))
        batch = take_batch(reader)
        assert batch.lagged == ev.StreamLagged(missed=7, resume_seq=1007)
        assert [ring_id for ring_id, _ in batch.events] == [1007, 1008, 1009, 1010, 1011]
        assert take_batch(reader).events == []
    statistics = ring.statistics()
    assert (statistics.lag_reports, statistics.missed_events) == (1, 7)
    assert statistics.readers == 0


async def test_last_event_id_resumes_within_the_ring_or_from_its_oldest() -> None:
    ring = Broadcaster(5, first_id=1000)
    for n in range(8):
        ring.publish(_envelope(n))  # holds 1003..1007
    with ring.subscribe(last_event_id=1004) as reader:
        batch = take_batch(reader)
        assert batch.lagged is None
        assert [ring_id for ring_id, _ in batch.events] == [1005, 1006, 1007]
    with ring.subscribe(last_event_id=1000) as reader:
        batch = take_batch(reader)
        assert batch.lagged == ev.StreamLagged(missed=2, resume_seq=1003)
    with ring.subscribe(last_event_id=12) as reader:  # an id from before this boot
        assert take_batch(reader).lagged == ev.StreamLagged(missed=3, resume_seq=1003)
    with ring.subscribe(last_event_id=10**18) as reader:  # ahead of the ring: from now on
        assert take_batch(reader).events == []
    with ring.subscribe() as reader:  # no id: from now on
        assert take_batch(reader).events == []
        ring.publish(_envelope(9))
        assert [i for i, _ in take_batch(reader).events] == [1008]


async def test_frames_carry_ring_ids_and_the_lag_report_has_none() -> None:
    ring = Broadcaster(2, first_id=50)
    with ring.subscribe() as reader:
        for n in range(3):
            ring.publish(_envelope(n))
        decoder = SSEDecoder()
        messages = decoder.feed(reader.take_frames())
    assert [m.event for m in messages] == ["stream_lagged", "upload_started", "upload_started"]
    assert messages[0].id is None
    assert [m.id for m in messages[1:]] == ["51", "52"]


@st.composite
def _script(draw: st.DrawFn) -> list[tuple[str, int]]:
    steps = st.one_of(
        st.tuples(st.just("publish"), st.integers(1, 7)),
        st.tuples(st.just("read"), st.integers(0, 3)),
        st.tuples(st.just("join"), st.integers(-3, 30)),
        st.tuples(st.just("leave"), st.integers(0, 3)),
    )
    return draw(st.lists(steps, max_size=60))


@given(capacity=st.integers(1, 8), script=_script())
async def test_any_interleaving_keeps_order_and_reports_every_gap(
    capacity: int, script: list[tuple[str, int]]
) -> None:
    ring = Broadcaster(capacity, first_id=100)
    published = 0
    readers: list[tuple[RingCursor, list[int], int]] = []  # (reader, ids seen, start id)
    contexts: list[AbstractContextManager[RingCursor]] = []
    for action, value in script:
        if action == "publish":
            for _ in range(value):
                ring.publish(_envelope(published))
                published += 1
        elif action == "join":
            last = 100 + value if value >= 0 else None
            context = ring.subscribe(last_event_id=last)
            reader = context.__enter__()
            contexts.append(context)
            start = reader.position + 1
            readers.append((reader, [], start))
        elif readers:
            reader, seen, start = readers[value % len(readers)]
            if action == "read":
                batch = take_batch(reader)
                expected_next = seen[-1] + 1 if seen else start
                if batch.lagged is not None:
                    # A gap, exactly as reported, to the oldest event still held.
                    assert batch.lagged.resume_seq == ring.first_id
                    assert batch.events[0][0] == batch.lagged.resume_seq if batch.events else True
                    assert batch.lagged.resume_seq - expected_next == batch.lagged.missed
                    expected_next = batch.lagged.resume_seq
                ids = [ring_id for ring_id, _ in batch.events]
                assert ids == list(range(expected_next, expected_next + len(ids))), "in order"
                assert not ids or ids[-1] == ring.next_id - 1, "everything held is delivered"
                for ring_id, envelope in batch.events:
                    assert envelope.seq == ring_id - 100, "the right event under each id"
                seen.extend(ids)
            else:
                index = value % len(readers)
                contexts.pop(index).__exit__(None, None, None)
                readers.pop(index)
    assert ring.statistics().readers == len(readers)
    for remaining in contexts:
        remaining.__exit__(None, None, None)
    assert ring.statistics().readers == 0


async def test_a_ring_subscription_counts_out_once_however_often_it_is_closed() -> None:
    ring = Broadcaster(4)
    with ring.subscribe() as reader:
        reader.close()
        assert ring.statistics().readers == 0
    reader.close()
    assert ring.statistics().readers == 0
