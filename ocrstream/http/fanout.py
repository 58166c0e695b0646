"""The watchers' fan-out: one task writes the events of every watcher stream.

The watcher path, end to end (``GET /api/events`` and ``GET /api/ocr/{id}/events``):

1. **Connection** (``serve.py``). ocrstream runs Hypercorn's own trio worker loop,
   copied so that each connection's task can set :data:`~ocrstream.http.direct.
   DIRECT_CONNECTION` (its socket stream and Hypercorn's send lock for it) before
   Hypercorn's ``TCPServer`` serves it; the connection's requests inherit it.
2. **Route** (``routes.py``, in Quart). Everything about the stream is decided here:
   the token, 404 or 204, the MAX_STREAMS slot, the cursor (a cursor), the
   200 head. The route hands the cursor to the request's
   :class:`~ocrstream.http.handoff.HandOff` and returns an empty streaming body.
3. **Hand-off** (``handoff.py``, ASGI middleware around Quart). It lets the head
   through (refusing one whose framing is not the server's to choose:
   ``Content-Length``, another transfer coding), holds back the body's end, and once
   Quart has let go of the request goes on in the same ASGI call: it makes the
   reader (:class:`Reader`: the cursor, and a
   :class:`~ocrstream.http.direct.ChunkWriter` for an HTTP/1.1 connection) and calls
   :meth:`FanOut.follow`, which waits there for the client to leave.
4. **Publish** (``service/memory/registry.py``). Recording an event marks that job's
   readers and the firehose readers here and rings one doorbell: constant time, no
   reader touched.
5. **Fan-out** (this module, one task in the app's lifespan). Each round takes every
   marked reader's waiting frames (encoded once, at publish) and writes them as one
   HTTP/1.1 chunk with a non-blocking write (``direct.py``: only when Hypercorn is not
   writing that connection, so their bytes never interleave). What the socket cannot
   take at once is handed to the reader's own task (step 3's call, woken through a
   cancel scope), which sends it with ordinary awaits under Hypercorn's send lock
   (bounded by STALLED_READER_TIMEOUT through TCP_USER_TIMEOUT), catches up with
   everything published meanwhile in one chunk, and hands the reader back. Readers
   without a direct writer (HTTP/1.0, HTTP/2, Quart's test client, another server)
   are always served by their own task through ASGI sends, woken the same way.
6. **End**. When the reader's cursor is exhausted (the terminal event sent) or the
   server ends its streams, its task returns to the hand-off, which sends the body's
   end through Hypercorn (the last chunk: h11's state stays right and the connection
   serves its next request); a client that left frees its slot and cursor at once.

Why: a task per reader, woken for every event and sending through Quart, Hypercorn,
h11 and trio, costs 60 to 150 µs per reader per event, so 1,000 firehose readers
saturated a core at 20 events/s. Without the direct writes (step 5 through ASGI
sends, under Hypercorn's own worker) the same 1,000 readers' p99 was 5 to 20 times
the direct path's (``benchmarks/bench_fanout.py``, the ablation): README's
"Operating notes" say which small Hypercorn hook would let steps 1 and 5's copy go.

Keep-alives: the loop also writes ``: keep-alive`` to each reader that has been sent
nothing for KEEPALIVE_INTERVAL, oldest first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
import trio.lowlevel

from ocrstream.core.sse import KEEPALIVE
from ocrstream.http.direct import ConnectionBroken

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hypercorn.typing import ASGIReceiveCallable

    from ocrstream.core.envelope import Envelope
    from ocrstream.http.direct import ChunkWriter
    from ocrstream.service.cursor import Cursor

__all__ = ["ROUND_SLICE", "FanOut", "FanOutStatistics", "Reader"]

#: Readers written between two checkpoints of the loop, so a round over thousands of
#: readers never keeps the jobs' own tasks from running for long.
ROUND_SLICE = 64


class Reader:
    """One watcher stream, as the fan-out sees it.

    Args:
        cursor: the reader's cursor (a job's history or the firehose ring).
        job_id: the job it watches, or None for the firehose.
        writer: its connection's direct writer, or None to send through ASGI.
    """

    __slots__ = (
        "broken",
        "closed",
        "cursor",
        "job_id",
        "last_sent",
        "pending",
        "task_turn",
        "wake",
        "writer",
    )

    def __init__(self, cursor: Cursor, job_id: str | None, writer: ChunkWriter | None) -> None:
        self.cursor = cursor
        self.job_id = job_id
        self.writer = writer
        #: Bytes its task must send (already chunk-framed when ``writer`` is set).
        self.pending = b""
        #: True while its task, not the loop, is serving it.
        self.task_turn = False
        #: The scope its task waits in while the loop serves it.
        self.wake: trio.CancelScope | None = None
        self.broken = False
        self.closed = False
        self.last_sent = 0.0


@dataclass(frozen=True, slots=True)
class FanOutStatistics:
    """Counts for tests and benchmarks: readers, and how their bytes went out.

    Attributes:
        readers: readers followed now.
        rounds: wake-ups of the loop.
        direct_writes: chunks the loop wrote to a socket.
        short_writes: of those, the ones the socket did not take whole.
        handed_over: times a reader's own task was given work.
    """

    readers: int
    rounds: int
    direct_writes: int
    short_writes: int
    handed_over: int


class FanOut:
    """The readers of watcher streams, and the one task that writes to them.

    Args:
        keepalive_interval: seconds of silence before ``: keep-alive`` (KEEPALIVE_INTERVAL).
    """

    def __init__(self, keepalive_interval: float) -> None:
        self.keepalive_interval = keepalive_interval
        self.running = False
        #: Set by :meth:`end_streams`: every stream ends once it has had what is waiting.
        self.ending = False
        self._by_job: dict[str, dict[Reader, None]] = {}
        self._firehose: dict[Reader, None] = {}
        # Every reader, least recently sent to first: the keep-alive schedule.
        self._quiet: OrderedDict[Reader, None] = OrderedDict()
        self._dirty_jobs: set[str] = set()
        self._firehose_dirty = False
        self._poked: list[Reader] = []
        self._doorbell = trio.Event()
        # When the loop's sleep ends without a doorbell (-inf while it is awake).
        self._sleeps_until = -math.inf
        self._rounds = 0
        self._direct_writes = 0
        self._short_writes = 0
        self._handed_over = 0

    # Publishing side: synchronous, never waits ----------------------------------------

    def published(self, envelope: Envelope) -> None:
        """A job published ``envelope`` (a registry listener): mark its job's watchers
        and the firehose readers, and ring the doorbell. Constant time."""
        self.changed(envelope.job_id)

    def changed(self, job_id: str | None) -> None:
        """Job ``job_id`` has new events (None: only the firehose has): mark its watchers
        and the firehose readers, and ring the doorbell. Constant time."""
        if job_id in self._by_job:
            self._dirty_jobs.add(job_id)
        if self._firehose:
            self._firehose_dirty = True
        self._doorbell.set()

    def end_streams(self) -> None:
        """End every stream, now and to come, once it has been sent what is waiting
        (shutdown: the firehose has no last event of its own). Each ends with the
        body's last chunk, as a finished job's watchers do."""
        self.ending = True
        for reader in list(self._quiet):
            if not reader.task_turn:
                self._hand_over(reader)

    def statistics(self) -> FanOutStatistics:
        """Counts for tests and benchmarks."""
        return FanOutStatistics(
            readers=len(self._quiet),
            rounds=self._rounds,
            direct_writes=self._direct_writes,
            short_writes=self._short_writes,
            handed_over=self._handed_over,
        )

    # The reader's own task -------------------------------------------------------------

    async def follow(
        self,
        reader: Reader,
        receive: ASGIReceiveCallable,
        send_body: Callable[[bytes], Awaitable[None]],
    ) -> bool:
        """Serve ``reader`` from its request's task until its last event has been sent
        (True: the caller ends the body) or the client is gone (False).

        Args:
            reader: the new reader (its response head already sent).
            receive: the request's ASGI receive, where the client's leaving shows.
            send_body: sends body bytes through ASGI (for readers without a writer).
        """
        if not self.running:
            raise RuntimeError("the fan-out task is not running (the app's lifespan is not)")
        self._add(reader)
        try:
            while True:
                if not reader.task_turn:
                    with trio.CancelScope() as reader.wake:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            return False
                    reader.wake = None
                    continue
                if reader.broken:
                    return False
                try:
                    await self._send_own(reader, send_body)
                except ConnectionBroken:
                    return False
                if reader.cursor.exhausted or self.ending:
                    return True
                reader.task_turn = False
                self._poke(reader)  # whatever came while it was away goes out from the loop
        finally:
            self._remove(reader)

    async def _send_own(
        self, reader: Reader, send_body: Callable[[bytes], Awaitable[None]]
    ) -> None:
        """Send what is pending, then everything published meanwhile (in one chunk each
        time), until the reader has caught up."""
        writer = reader.writer
        while True:
            if not reader.pending:
                more = reader.cursor.take_frames()
                if not more:
                    return
                reader.pending = writer.frame(more) if writer is not None else more
            data, reader.pending = reader.pending, b""
            if writer is not None:
                await writer.send(data)
            else:
                await send_body(data)
            self._touch(reader, trio.current_time())

    # Bookkeeping ------------------------------------------------------------------------

    def _add(self, reader: Reader) -> None:
        if reader.job_id is None:
            self._firehose[reader] = None
        else:
            self._by_job.setdefault(reader.job_id, {})[reader] = None
        reader.last_sent = trio.current_time()
        self._quiet[reader] = None
        if self.ending:
            reader.task_turn = True  # its task sends what is waiting, then ends
            return
        # What is waiting (a watcher's history, an upload's first events) goes out now,
        # from the reader's own task (sync: a direct write, or handed to that task), not
        # a round of the loop later. The loop is woken only if it sleeps past this
        # reader's first keep-alive (it had no reader: every other's comes sooner).
        self._serve(reader, reader.last_sent)
        if self._sleeps_until > reader.last_sent + self.keepalive_interval:
            self._doorbell.set()

    def _remove(self, reader: Reader) -> None:
        reader.closed = True
        reader.wake = None
        self._quiet.pop(reader, None)
        if reader.job_id is None:
            self._firehose.pop(reader, None)
            return
        watchers = self._by_job.get(reader.job_id)
        if watchers is not None:
            watchers.pop(reader, None)
            if not watchers:
                del self._by_job[reader.job_id]

    def _poke(self, reader: Reader) -> None:
        self._poked.append(reader)
        self._doorbell.set()

    def _touch(self, reader: Reader, now: float) -> None:
        reader.last_sent = now
        if reader in self._quiet:
            self._quiet.move_to_end(reader)

    def _hand_over(self, reader: Reader) -> None:
        reader.task_turn = True
        self._handed_over += 1
        if reader.wake is not None:
            reader.wake.cancel()

    # The loop ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The fan-out task: run it for the app's lifetime (in its lifespan nursery)."""
        self.running = True
        try:
            task_status.started()
            while True:
                self._sleeps_until = self._next_keepalive()
                with trio.move_on_at(self._sleeps_until):
                    await self._doorbell.wait()
                self._sleeps_until = -math.inf  # awake: it looks at every reader anew
                self._doorbell = trio.Event()
                await self._round()
        finally:
            self.running = False

    def _next_keepalive(self) -> float:
        for reader in self._quiet:
            return reader.last_sent + self.keepalive_interval
        return math.inf

    async def _round(self) -> None:
        self._rounds += 1
        readers, self._poked = self._poked, []
        dirty, self._dirty_jobs = self._dirty_jobs, set()
        for job_id in dirty:
            readers.extend(self._by_job.get(job_id, ()))
        if self._firehose_dirty:
            self._firehose_dirty = False
            readers.extend(self._firehose)
        now = trio.current_time()
        for count, reader in enumerate(readers, 1):
            self._serve(reader, now)
            if count % ROUND_SLICE == 0:
                await trio.lowlevel.checkpoint()
                now = trio.current_time()
        await self._keep_alive()

    async def _keep_alive(self) -> None:
        count = 0
        now = trio.current_time()
        while self._quiet:
            reader = next(iter(self._quiet))
            if reader.last_sent + self.keepalive_interval > now:
                return
            self._touch(reader, now)
            self._serve(reader, now, keepalive=True)
            count += 1
            if count % ROUND_SLICE == 0:
                await trio.lowlevel.checkpoint()
                now = trio.current_time()

    def _serve(self, reader: Reader, now: float, *, keepalive: bool = False) -> None:
        """Send the reader's waiting frames (or a keep-alive) now, or hand them to its task."""
        if reader.task_turn or reader.closed:
            return
        data = reader.cursor.take_frames()
        if keepalive and not data:
            data = KEEPALIVE
        if data:
            writer = reader.writer
            if writer is None:
                reader.pending = data
                self._hand_over(reader)
                return
            framed = writer.frame(data)
            try:
                written = writer.write_nowait(framed)
            except trio.WouldBlock:
                written = 0
            except ConnectionBroken:
                reader.broken = True
                self._hand_over(reader)
                return
            self._direct_writes += 1
            if written < len(framed):
                self._short_writes += 1
                reader.pending = framed[written:]
                self._hand_over(reader)
                return
            self._touch(reader, now)
        if reader.cursor.exhausted:
            self._hand_over(reader)  # its task ends the response
