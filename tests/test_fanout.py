"""The watchers' fan-out over real sockets: chunks written by the loop, full sockets
handed to the reader's task, keep-alives, endings, and closed connections."""

from __future__ import annotations

import json
import socket
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio
import trio.lowlevel
import trio.testing
from hypothesis import event, given
from hypothesis import strategies as st

from ocrstream.core import events as ev
from ocrstream.http.direct import ChunkWriter, ConnectionBroken, DirectConnection
from ocrstream.http.fanout import FanOut, Reader
from ocrstream.service.memory.broadcast import Broadcaster
from ocrstream.service.memory.registry import JobHandle, JobRegistry
from tests.chunked import take_chunks
from tests.sse_reading import SSEDecoder, SSEMessage
from tests.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ocrstream.service.cursor import Cursor

FIRST_RING_ID = 1000


@dataclass
class Watcher:
    """One reader and the client end of its connection."""

    reader: Reader
    server: trio.SocketStream | None
    client: trio.SocketStream | None
    messages: list[SSEMessage] = field(default_factory=list)
    keepalives: int = 0
    left: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)
    outcome: bool | None = None
    # Set while the client reads; replace with a fresh Event to stop reading.
    reading: trio.Event = field(default_factory=trio.Event)
    _raw: bytearray = field(default_factory=bytearray)
    _decoder: SSEDecoder = field(default_factory=SSEDecoder)

    def __post_init__(self) -> None:
        self.reading.set()

    def got(self, payload: bytes) -> None:
        self.messages.extend(self._decoder.feed(payload))
        self.keepalives = self._decoder.comments

    async def read_client(self) -> None:
        assert self.client is not None
        while True:
            await self.reading.wait()
            data = await self.client.receive_some(1 << 16)
            if not data:
                return
            self._raw += data
            payload, ended = take_chunks(self._raw)
            assert not ended, "the loop never writes the last chunk"
            self.got(payload)

    def pause(self) -> None:
        if self.reading.is_set():  # a second pause must not strand the first one's waiter
            self.reading = trio.Event()

    def resume(self) -> None:
        self.reading.set()

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(message.data) for message in self.messages]


@dataclass
class Rig:
    fanout: FanOut
    registry: JobRegistry
    ring: Broadcaster
    nursery: trio.Nursery
    streams: list[trio.SocketStream] = field(default_factory=list)

    async def watch(
        self,
        source: AbstractContextManager[Cursor],
        job_id: str | None,
        *,
        direct: bool = True,
        buffer: int | None = None,
    ) -> Watcher:
        """Start a reader's task on ``source``: over a socket pair, or through ASGI sends."""
        server = client = None
        if direct:
            server_sock, client_sock = trio.socket.socketpair()
            if buffer is not None:
                server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
                client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
            server, client = trio.SocketStream(server_sock), trio.SocketStream(client_sock)
            self.streams += (server, client)
        cursor = source.__enter__()
        watcher = Watcher(
            Reader(
                cursor,
                job_id,
                ChunkWriter(DirectConnection(server, trio.Lock())) if server else None,
            ),
            server,
            client,
        )

        async def receive() -> dict[str, Any]:
            await watcher.left.wait()
            return {"type": "http.disconnect"}

        async def send_body(data: bytes) -> None:
            await watcher.reading.wait()
            watcher.got(data)

        async def follow() -> None:
            try:
                watcher.outcome = await self.fanout.follow(watcher.reader, receive, send_body)  # type: ignore[arg-type]
            finally:
                source.__exit__(None, None, None)
                watcher.finished.set()

        self.nursery.start_soon(follow)
        if client is not None:
            self.nursery.start_soon(watcher.read_client)
        return watcher


@asynccontextmanager
async def rig(*, keepalive: float = 3600, event_buffer: int = 1000) -> AsyncIterator[Rig]:
    ring = Broadcaster(event_buffer, first_id=FIRST_RING_ID)
    fanout = FanOut(keepalive)
    registry = JobRegistry(result_ttl=60, on_publish=(ring.publish, fanout.published))
    streams: list[trio.SocketStream] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(fanout.run)
            yield Rig(fanout, registry, ring, nursery, streams)
            nursery.cancel_scope.cancel()
    finally:
        for stream in streams:
            stream.socket.close()


def _received(index: int, size: int = 10) -> ev.ImageReceived:
    return ev.ImageReceived(
        file_index=index, file_name=f"{index}-" + "x" * size, size_bytes=size, content_type=None
    )


def _complete(files: int) -> ev.ProcessingComplete:
    return ev.ProcessingComplete(
        file_count=files,
        valid_count=0,
        invalid_count=files,
        ocr_success_count=0,
        ocr_error_count=0,
        duration_ms=1.0,
    )


async def until(predicate: Callable[[], bool], seconds: float = 5) -> None:
    await wait_until(predicate, timeout=seconds, interval=0.002)


def _seqs(watcher: Watcher) -> list[int]:
    return [int(message.id or "-1") for message in watcher.messages]


async def test_each_reader_gets_its_jobs_events_as_chunks_from_the_loop() -> None:
    async with rig() as r:
        first, second = r.registry.create(), r.registry.create()
        watchers = [
            await r.watch(r.registry.subscribe(first), first.job_id),
            await r.watch(r.registry.subscribe(second), second.job_id),
            await r.watch(r.ring.subscribe(), None),
        ]
        await trio.testing.wait_all_tasks_blocked()
        for n in range(5):
            first.publish(_received(n))
            second.publish(_received(n))
            await trio.lowlevel.checkpoint()  # a few rounds, a few chunks
        await until(lambda: len(watchers[2].messages) == 10)
        await until(lambda: len(watchers[0].messages) == len(watchers[1].messages) == 5)
        for watcher, handle in zip(watchers, (first, second), strict=False):
            # Exactly the frames encoded at publish time, ids being the job's seqs.
            assert [m.data for m in watcher.messages] == [
                SSEDecoder().feed(frame)[0].data for frame in handle.frames
            ]
            assert _seqs(watcher) == [0, 1, 2, 3, 4]
        firehose = watchers[2]
        assert _seqs(firehose) == list(range(FIRST_RING_ID, FIRST_RING_ID + 10))
        assert {d["job_id"] for d in firehose.documents()} == {first.job_id, second.job_id}
        statistics = r.fanout.statistics()
        assert statistics.direct_writes >= 3
        assert statistics.handed_over == 0, "nothing was left for the readers' tasks"


async def test_a_new_watcher_gets_the_history_then_live_events_and_ends_after_the_last() -> None:
    async with rig() as r:
        handle = r.registry.create()
        for n in range(3):
            handle.publish(_received(n))
        resumed = await r.watch(r.registry.subscribe(handle, after=0), handle.job_id)
        whole = await r.watch(r.registry.subscribe(handle), handle.job_id)
        await until(lambda: len(whole.messages) == 3 and len(resumed.messages) == 2)
        handle.publish(_complete(3))
        with trio.fail_after(5):
            await whole.finished.wait()
            await resumed.finished.wait()
        assert whole.outcome is True, "ended by the last event"
        assert resumed.outcome is True
        assert _seqs(whole) == [0, 1, 2, 3]
        assert _seqs(resumed) == [1, 2, 3]
        assert r.fanout.statistics().readers == 0


async def test_readers_without_a_socket_get_the_same_bytes_through_their_task() -> None:
    async with rig() as r:
        handle = r.registry.create()
        direct = await r.watch(r.registry.subscribe(handle), handle.job_id)
        asgi = await r.watch(r.registry.subscribe(handle), handle.job_id, direct=False)
        for n in range(4):
            handle.publish(_received(n))
        handle.publish(_complete(4))
        with trio.fail_after(5):
            await direct.finished.wait()
            await asgi.finished.wait()
        await until(lambda: len(direct.messages) == 5)  # the client side reads on its own
        assert asgi.outcome is True
        assert asgi.messages == direct.messages
        assert _seqs(asgi) == [0, 1, 2, 3, 4]


async def test_a_full_socket_goes_to_its_task_and_never_holds_up_the_others() -> None:
    async with rig() as r:
        handle = r.registry.create()
        stalled = await r.watch(r.registry.subscribe(handle), handle.job_id, buffer=4096)
        others = [await r.watch(r.registry.subscribe(handle), handle.job_id) for _ in range(3)]
        stalled.pause()
        await trio.testing.wait_all_tasks_blocked()
        count = 40  # 40 events of ~8 KB: far more than the stalled socket holds
        for n in range(count):
            handle.publish(_received(n, size=8000))
            await trio.lowlevel.checkpoint()
        # Everyone else has everything while the stalled reader has not read a byte.
        await until(lambda: all(len(o.messages) == count for o in others))
        assert stalled.messages == []
        assert stalled.reader.task_turn, "its own task holds what the socket did not take"
        assert r.fanout.statistics().short_writes >= 1
        # Once it reads again it catches up: every event, in order, none twice.
        stalled.resume()
        handle.publish(_complete(count))
        with trio.fail_after(5):
            await stalled.finished.wait()
        await until(lambda: len(stalled.messages) == count + 1)
        assert _seqs(stalled) == list(range(count + 1))
        assert stalled.outcome is True


async def test_publishing_only_marks_readers_the_loop_does_the_writing() -> None:
    taken: list[int] = []

    class CountingSource:
        exhausted = False

        def take_frames(self) -> bytes:
            taken.append(1)
            return b""

        def close(self) -> None:
            pass

    async with rig() as r:
        handle = r.registry.create()
        fanout = r.fanout
        readers = [Reader(CountingSource(), handle.job_id, None) for _ in range(200)]
        for reader in readers:
            fanout._add(reader)
        await trio.testing.wait_all_tasks_blocked()
        taken.clear()
        handle.publish(_received(0))  # synchronous: must not visit any reader
        assert taken == []
        await trio.testing.wait_all_tasks_blocked()
        assert len(taken) == len(readers), "the loop took each reader's frames once"
        for reader in readers:
            fanout._remove(reader)


async def test_keepalives_go_to_quiet_readers_only(mock_clock: trio.testing.MockClock) -> None:
    # Trio's clock stands still unless the test moves it: no wall-clock timing here.
    async with rig(keepalive=10) as r:
        handle = r.registry.create()
        quiet = await r.watch(r.registry.subscribe(handle), handle.job_id)
        asgi = await r.watch(r.ring.subscribe(), None, direct=False)

        async def at(elapsed: float) -> tuple[int, int]:
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(elapsed)
            await trio.testing.wait_all_tasks_blocked()
            return quiet.keepalives, asgi.keepalives

        assert await at(9.9) == (0, 0)
        assert await at(0.1) == (1, 1), "after 10 s of silence"
        assert await at(5) == (1, 1)
        handle.publish(_received(0))  # t=15: both get it (the asgi reader is the firehose)
        assert await at(9) == (1, 1), "t=24: the event reset the silence"
        assert len(quiet.messages) == len(asgi.messages) == 1
        assert await at(1) == (2, 2), "t=25: 10 s after the event"


async def test_ending_the_streams_sends_what_is_waiting_then_ends_each_one() -> None:
    async with rig() as r:
        handle = r.registry.create()
        firehose = await r.watch(r.ring.subscribe(), None)
        asgi = await r.watch(r.ring.subscribe(), None, direct=False)
        watcher = await r.watch(r.registry.subscribe(handle), handle.job_id)
        await trio.testing.wait_all_tasks_blocked()
        handle.publish(_received(0))
        r.fanout.end_streams()  # before the loop has even written that event
        with trio.fail_after(5):
            for each in (firehose, asgi, watcher):
                await each.finished.wait()
        assert [firehose.outcome, asgi.outcome, watcher.outcome] == [True, True, True]
        await until(lambda: len(firehose.messages) == len(watcher.messages) == 1)
        assert len(asgi.messages) == 1
        # A stream opened from now on gets what there is, then ends too.
        late = await r.watch(r.registry.subscribe(handle), handle.job_id)
        with trio.fail_after(5):
            await late.finished.wait()
        assert late.outcome is True
        await until(lambda: _seqs(late) == [0])
        assert r.fanout.statistics().readers == 0


async def test_a_client_that_leaves_is_forgotten() -> None:
    async with rig() as r:
        handle = r.registry.create()
        watcher = await r.watch(r.registry.subscribe(handle), handle.job_id)
        await trio.testing.wait_all_tasks_blocked()
        assert r.fanout.statistics().readers == 1
        watcher.left.set()
        with trio.fail_after(5):
            await watcher.finished.wait()
        assert watcher.outcome is False
        assert r.fanout.statistics().readers == 0
        assert handle.reader_count == 0
        handle.publish(_received(0))
        await trio.testing.wait_all_tasks_blocked()
        assert watcher.messages == []


async def test_a_closed_connection_is_never_written_even_if_its_fd_is_reused() -> None:
    async with rig() as r:
        handle = r.registry.create()
        gone = await r.watch(r.registry.subscribe(handle), handle.job_id)
        await trio.testing.wait_all_tasks_blocked()
        assert gone.server is not None
        old_fd = gone.server.socket.fileno()
        await gone.server.aclose()  # what Hypercorn does when the client goes away
        # New connections are likely to get the freed fd number.
        sockets = [sock for _ in range(4) for sock in socket.socketpair()]
        try:
            assert old_fd in [sock.fileno() for sock in sockets], "the fd number was reused"
            handle.publish(_received(0))
            with trio.fail_after(5):
                await gone.finished.wait()
            assert gone.outcome is False
            for sock in sockets:
                sock.setblocking(False)
                try:
                    stray = sock.recv(100)
                except BlockingIOError:
                    stray = b""
                assert stray == b"", "bytes reached another connection"
        finally:
            for sock in sockets:
                sock.close()


async def test_the_writer_reports_a_peer_that_reset() -> None:
    server_sock, client_sock = trio.socket.socketpair()
    writer = ChunkWriter(DirectConnection(trio.SocketStream(server_sock), trio.Lock()))
    client_sock.close()
    try:
        writer.write_nowait(ChunkWriter.frame(b"data"))
    except ConnectionBroken:
        pass
    else:
        raise AssertionError("a write to a closed peer must fail")
    server_sock.close()


# Any interleaving ---------------------------------------------------------------------

Step = tuple[str, int]


# Weighted: publishing and pausing often enough that sockets fill and the ring laps.
_ACTIONS = ("publish",) * 4 + ("join",) * 2 + ("pause",) * 2 + ("resume", "leave", "yield")


def _script() -> st.SearchStrategy[list[Step]]:
    # The value picks a job (value % 2) and ~value KB for publish; a job or the firehose,
    # direct or through ASGI, for join; a reader for leave, pause and resume.
    step = st.tuples(st.sampled_from(_ACTIONS), st.integers(0, 11))
    return st.lists(step, min_size=1, max_size=60)


@given(script=_script(), event_buffer=st.integers(2, 8))
async def test_any_interleaving_delivers_in_order_with_gaps_only_where_reported(
    script: list[Step], event_buffer: int
) -> None:
    jobs_count = 2
    async with rig(event_buffer=event_buffer) as r:
        jobs: list[JobHandle] = [r.registry.create() for _ in range(jobs_count)]
        # (watcher, job index or None, first seq / ring id it must get)
        joined: list[tuple[Watcher, int | None, int]] = []
        for action, value in script:
            if action == "publish":
                handle = jobs[value % jobs_count]
                handle.publish(_received(handle.record.next_seq, size=1000 * value))
                await trio.lowlevel.checkpoint()  # as a job's task does between steps
            elif action == "join":
                direct = value % 2 == 0
                index = (value // 2) % (jobs_count + 1)
                if index < jobs_count:
                    handle = jobs[index]
                    watcher = await r.watch(
                        r.registry.subscribe(handle), handle.job_id, direct=direct, buffer=4096
                    )
                    joined.append((watcher, index, 0))
                else:
                    start = r.ring.next_id
                    watcher = await r.watch(r.ring.subscribe(), None, direct=direct, buffer=4096)
                    joined.append((watcher, None, start))
            elif action == "yield":
                for _ in range(value + 1):
                    await trio.lowlevel.checkpoint()
            elif joined:
                watcher = joined[value % len(joined)][0]
                if action == "leave":
                    watcher.left.set()
                elif action == "pause":
                    watcher.pause()
                else:
                    watcher.resume()
        for handle in jobs:
            handle.publish(_complete(handle.record.next_seq))
        for watcher, _, _ in joined:
            watcher.resume()
        total_ring = r.ring.next_id
        with trio.fail_after(10):
            for watcher, job, _ in joined:
                if job is not None:
                    await watcher.finished.wait()
                    if watcher.outcome:  # all written; wait for the client to read it
                        await until(_holds(watcher, jobs[job].record.next_seq))
            for watcher, job, _ in joined:
                if job is None and not watcher.left.is_set():
                    await until(_reached(watcher, total_ring - 1))
        for watcher, job, start in joined:
            if job is not None:
                seqs = _seqs(watcher)
                if watcher.left.is_set():
                    # Left early: a prefix of the history, in order.
                    assert seqs == list(range(len(seqs)))
                else:
                    assert watcher.outcome is True
                    assert seqs == list(range(jobs[job].record.next_seq)), "all, in order"
                    assert [m.data for m in watcher.messages] == [
                        SSEDecoder().feed(frame)[0].data for frame in jobs[job].frames
                    ]
            else:
                _check_firehose(watcher, start)
        event(f"a socket filled up: {r.fanout.statistics().short_writes > 0}")
        event(f"a firehose reader lagged: {r.ring.statistics().lag_reports > 0}")
        for watcher, _, _ in joined:
            watcher.left.set()
        with trio.fail_after(5):
            for watcher, _, _ in joined:
                await watcher.finished.wait()
        assert r.fanout.statistics().readers == 0
        for handle in jobs:
            assert handle.reader_count == 0


def _holds(watcher: Watcher, count: int) -> Callable[[], bool]:
    return lambda: len(watcher.messages) >= count


def _reached(watcher: Watcher, ring_id: int) -> Callable[[], bool]:
    def reached() -> bool:
        ids = [int(m.id) for m in watcher.messages if m.id is not None]
        return bool(ids) and ids[-1] == ring_id

    return reached


def _check_firehose(watcher: Watcher, start: int) -> None:
    """Ring ids in order from ``start``; every gap is announced by stream_lagged with
    exactly its size, and nothing is delivered twice."""
    expected = start
    last_id: str | None = None
    for message in watcher.messages:
        if message.event == "stream_lagged":
            lag = json.loads(message.data)["data"]
            # No id line: a decoder keeps the last id it saw (the SSE rule).
            assert message.id == last_id
            assert lag["resume_seq"] - expected == lag["missed"]
            expected = lag["resume_seq"]
            continue
        assert int(message.id or "-1") == expected, "in order, no gap unless reported"
        last_id = message.id
        expected += 1
