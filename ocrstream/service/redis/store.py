"""Jobs shared through Redis: this instance's own jobs written there, others' mirrored.

The instance that holds an upload sequences its job as in the embedded mode (a
:class:`~ocrstream.service.memory.registry.JobHandle` in ``local``; its uploader and its
watchers here are served from memory) and *replicates* each event, in order, with one
atomic append (:mod:`ocrstream.service.redis.events`). Any instance serves any job: a job
it does not hold is *mirrored* into ``mirrors`` (a registry of handles whose events come
from Redis, with the frame bytes the owner made, so every instance sends the same bytes).

One tail task per instance reads the shared firehose (once per instance, however many
readers): it feeds the local firehose ring with the shared ids and every mirror its next
events; a mirror that sees a gap (this instance fell behind the firehose) reads what it
missed from its job's own stream.

Liveness: the instance renews ``instance:{iid}`` (INSTANCE_LEASE); every instance
sweeps for instances whose lease lapsed and ends their running jobs with
``processing_error`` ``instance_lost``. A Redis that does not answer within 2 s makes the
instance not ready (``/readyz`` 503, new work refused) and, past UPLOAD_TIMEOUT, ends the
running jobs it holds and mirrors with ``store_unavailable``; it comes back by itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING

import trio
from coredis.tokens import PureToken

from ocrstream.core.documents import Document, document_from_json
from ocrstream.core.envelope import Envelope, parse_envelope
from ocrstream.core.events import ErrorInfo, ProcessingError
from ocrstream.core.jobs import JobRecord
from ocrstream.core.redis_url import redacted
from ocrstream.core.sse import encode_event
from ocrstream.service.redis.connection import STORE_TIMEOUT, describe_error, key
from ocrstream.service.redis.events import Append, RedisEventLog, running_key
from ocrstream.service.redis.queue import is_store_error

if TYPE_CHECKING:
    from collections.abc import Callable

    import coredis

    from ocrstream.core.config import Settings
    from ocrstream.service.memory.broadcast import Broadcaster
    from ocrstream.service.memory.registry import JobHandle, JobRegistry
    from ocrstream.service.redis.events import FirehoseEntry

__all__ = [
    "GATHER_MAX",
    "GATHER_QUIET",
    "HEALTH_INTERVAL",
    "REPLICATION_BATCH",
    "SWEEP_INTERVAL",
    "TAIL_BLOCK_MS",
    "RedisStore",
    "frame_envelope",
]

logger = logging.getLogger(__name__)

#: Seconds between the store's health checks.
HEALTH_INTERVAL = 1.0
#: Seconds between sweeps for lost instances.
SWEEP_INTERVAL = 1.0
#: Events at most in one round trip of replication.
REPLICATION_BATCH = 256
#: Seconds replication waits for the rest of a burst: while a queued job's newest event
#: is not its terminal one, more usually follow within a scheduler tick or two, and one
#: append (one ring append, one write per reader on every instance) beats two...
GATHER_QUIET = 0.0005
#: ...but never longer than this in all, however steadily events keep coming.
GATHER_MAX = 0.002
#: Milliseconds the tail waits on the firehose per read.
TAIL_BLOCK_MS = 1000
#: Seconds before the same error of ours (not Redis's) is logged with its traceback again.
_BUG_LOG_INTERVAL = 60.0

_MESSAGES = {
    "instance_lost": "the instance running the job stopped without ending it",
    "store_unavailable": "the shared store (Redis) was unreachable for longer than the job"
    " could wait",
}


def frame_envelope(frame: bytes) -> Envelope:
    """The envelope a frame carries (its ``data:`` line)."""
    for line in frame.split(b"\n"):
        if line.startswith(b"data: "):
            document = json.loads(line[6:])
            assert isinstance(document, dict)
            return parse_envelope(document)
    raise ValueError("a frame without data")


@dataclass(slots=True)
class _Pending:
    """Events of this instance's jobs not yet in Redis, in publish order."""

    queue: deque[Envelope] = field(default_factory=deque)
    wake: trio.Event = field(default_factory=trio.Event)


class RedisStore:
    """This instance's view of the shared store.

    Args:
        client: the Redis client (open for the store's lifetime).
        settings: RESULT_TTL, EVENT_BUFFER, INSTANCE_LEASE, UPLOAD_TIMEOUT.
        local: the registry of the jobs this instance runs.
        mirrors: the registry of other instances' jobs this instance serves.
        broadcaster: the local firehose ring, fed from the shared firehose.
        changed: tells the fan-out that a job (or, None, the firehose) has new events.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        settings: Settings,
        *,
        local: JobRegistry,
        mirrors: JobRegistry,
        broadcaster: Broadcaster,
        changed: Callable[[str | None], None],
    ) -> None:
        self.client = client
        self.instance_id = uuid.uuid4().hex
        self.log = RedisEventLog(
            client, event_buffer=settings.event_buffer, result_ttl=settings.result_ttl
        )
        self._settings = settings
        self._local = local
        self._mirrors = mirrors
        self._broadcaster = broadcaster
        self._changed = changed
        self._pending = _Pending()
        # Running jobs of this instance whose first event is in Redis (see
        # wait_replicated), and a doorbell rung after each append.
        self._announced: set[str] = set()
        self._appended = trio.Event()
        self._filling: set[str] = set()
        #: Whether Redis answered its last health check (``/readyz``).
        self.ready = False
        self._down_since: float | None = None
        # Since when Redis has answered without a break (None: it is not answering).
        self._healthy_since: float | None = None
        self.errors = 0
        # The last error not Redis's that was logged, and when (see _store_failed).
        self._last_bug: tuple[str, float] | None = None
        self.instances_lost = 0
        #: This instance's events put into its firehose ring straight after their
        #: append (the rest come back from Redis through the tail).
        self.firehose_direct = 0
        # The shared firehose id the local ring takes next; None until the tail has
        # read the shared firehose once.
        self._ring_next: int | None = None

    # The owner's side -------------------------------------------------------------

    def replicate(self, envelope: Envelope) -> None:
        """A registry listener of ``local``: queue the event for Redis; never blocks."""
        self._pending.queue.append(envelope)
        self._pending.wake.set()

    async def _replicate_forever(self) -> None:
        pending = self._pending
        while True:
            if not pending.queue:
                pending.wake = trio.Event()
                await pending.wake.wait()
                continue
            await self._gather()
            # Everything waiting goes in one round trip, in publish order (a burst of a
            # job's events, or several jobs' at once); a retry re-sends the same appends,
            # which Redis takes once (entry ids are the seqs).
            batch = list(islice(pending.queue, REPLICATION_BATCH))
            try:
                ring_ids = await self._append(batch)
            except Exception as error:
                self._store_failed(error)
                await trio.sleep(0.2)
                continue
            for _ in batch:
                pending.queue.popleft()
            self._ring_directly(batch, ring_ids)
            for envelope in batch:
                assert envelope.job_id is not None
                if envelope.is_terminal:
                    self._announced.discard(envelope.job_id)
                else:
                    self._announced.add(envelope.job_id)
            self._appended.set()
            self._appended = trio.Event()

    async def _gather(self) -> None:
        """Wait for the rest of the queued jobs' bursts: until every job in the queue has
        its terminal event queued, no new event came for GATHER_QUIET, or GATHER_MAX
        passed. A small job's events then reach Redis, and every instance's firehose
        readers, in one piece; an event with nothing after it waits GATHER_QUIET."""
        pending = self._pending
        deadline = trio.current_time() + GATHER_MAX
        while len(pending.queue) < REPLICATION_BATCH and _has_open_job(pending.queue):
            pending.wake = trio.Event()
            quiet = min(deadline, trio.current_time() + GATHER_QUIET)
            with trio.move_on_at(quiet) as waiting:
                await pending.wake.wait()
            if waiting.cancelled_caught:
                return

    async def wait_announced(self, job_id: str) -> None:
        """Return once the job's first event is in Redis (or it has ended), so that
        every instance knows the job by the time its uploader learns its id; bounded by
        STORE_TIMEOUT (a slow store only makes other instances learn of it later)."""
        with trio.move_on_after(STORE_TIMEOUT):
            while job_id not in self._announced and self._local.get(job_id) is not None:
                handle = self._local.get(job_id)
                if (
                    handle is not None
                    and handle.record.finished
                    and not any(envelope.job_id == job_id for envelope in self._pending.queue)
                ):
                    return
                await self._appended.wait()

    def _ring_directly(self, batch: list[Envelope], ring_ids: list[int]) -> None:
        """Put this instance's just-appended events into its own firehose ring now, as
        long as each is the ring's next id (nothing of another instance's came between):
        its own firehose readers then get them without the trip back through the tail.
        The first that is not (or a retry's 0) stops this: the tail brings the rest, in
        order, and skips what is already in the ring."""
        for envelope, ring_id in zip(batch, ring_ids, strict=True):
            if self._ring_next is None or ring_id != self._ring_next:
                break
            self._into_ring(ring_id, encode_event(envelope))
            self.firehose_direct += 1

    def _into_ring(self, ring_id: int, frame: bytes) -> None:
        """Put one shared firehose frame into the local ring and wake its readers."""
        self._broadcaster.publish_frame(ring_id, frame)
        self._ring_next = ring_id + 1
        self._changed(None)

    async def _append(self, batch: list[Envelope]) -> list[int]:
        appends = []
        for envelope in batch:
            assert envelope.job_id is not None
            assert envelope.seq is not None
            handle = self._local.get(envelope.job_id)
            created = handle.record.created_at if handle is not None else envelope.timestamp
            appends.append(
                Append(
                    envelope.job_id,
                    envelope.seq,
                    encode_event(envelope),
                    envelope.is_terminal,
                    self.instance_id,
                    _timestamp(created),
                )
            )
        with trio.fail_after(STORE_TIMEOUT):
            return await self.log.append_many(appends)

    # Any instance's side ----------------------------------------------------------

    async def lookup(self, job_id: str) -> JobHandle | None:
        """The job, wherever it runs: this instance's, a mirror, or one mirrored now
        from Redis; None when Redis does not know it (unknown or expired)."""
        handle = self._local.get(job_id) or self._mirrors.get(job_id)
        if handle is not None:
            return handle
        with trio.fail_after(STORE_TIMEOUT):
            created_at = await self.log.created_at(job_id)
        if created_at is None:
            return None  # no event of it ever reached Redis, or it expired
        handle = self._mirrors.get(job_id)
        if handle is None:
            record = JobRecord(job_id=job_id)
            record.created_at = datetime.fromisoformat(created_at)
            handle = self._mirrors.adopt(record)
        # The mirror exists before its history is read: an event the firehose tail
        # brings meanwhile is either the next one (fed at once) or marks a gap that the
        # tail fills from the job's stream, so none falls between the read and the tail.
        with trio.fail_after(STORE_TIMEOUT):
            history = await self.log.history(job_id, after=handle.record.next_seq - 1)
        self._feed(handle, history)
        return handle

    def _feed(self, handle: JobHandle, frames: list[tuple[int, bytes]]) -> None:
        record = handle.record
        for seq, frame in frames:
            if record.finished:
                return
            if seq == record.next_seq:
                handle.publish_remote(frame_envelope(frame), frame)

    def _offer(self, entry: FirehoseEntry) -> None:
        """One firehose entry for the local ring (unless this instance put it there
        already, see _ring_directly) and, if it mirrors the job, its mirror."""
        if self._ring_next is None or entry.ring_id >= self._ring_next:
            self._into_ring(entry.ring_id, entry.frame)
        handle = self._mirrors.get(entry.job_id)
        if handle is None or handle.record.finished:
            return
        if entry.seq == handle.record.next_seq:
            handle.publish_remote(frame_envelope(entry.frame), entry.frame)
        elif entry.seq > handle.record.next_seq:
            self._filling.add(entry.job_id)

    async def _fill(self, job_id: str) -> None:
        handle = self._mirrors.get(job_id)
        if handle is None or handle.record.finished:
            return
        with trio.fail_after(STORE_TIMEOUT):
            frames = await self.log.history(job_id, after=handle.record.next_seq - 1)
        self._feed(handle, frames)

    async def _tail_forever(self) -> None:
        last: int | None = None
        while True:
            try:
                with trio.fail_after(STORE_TIMEOUT + TAIL_BLOCK_MS / 1000):
                    entries = await self.log.firehose_after(
                        last, block_ms=None if last is None else TAIL_BLOCK_MS
                    )
                    if last is None and not entries:
                        last = await self._newest_id()
            except Exception as error:
                self._store_failed(error)
                await trio.sleep(0.5)
                continue
            if last is not None and entries and entries[0].ring_id != last + 1:
                # Fell behind the firehose (it was trimmed past us): every mirror reads
                # what it missed from its own stream.
                self._filling.update(handle.job_id for handle in self._mirrors.running())
            for entry in entries:
                self._offer(entry)
                last = entry.ring_id
            if self._ring_next is None and last is not None:
                self._ring_next = last + 1  # an empty firehose: its next id
            for job_id in list(self._filling):
                self._filling.discard(job_id)
                try:
                    await self._fill(job_id)
                except Exception as error:
                    self._filling.add(job_id)
                    self._store_failed(error)

    async def _newest_id(self) -> int:
        entries = await self.client.xrevrange(key("firehose"), count=1)
        if not entries:
            return 0
        identifier = entries[0].identifier
        text = identifier.decode() if isinstance(identifier, bytes) else identifier
        return int(text.split("-", 1)[0])

    # Results ---------------------------------------------------------------------

    async def keep_result(self, job_id: str, document: Document, pdf: bytes | None) -> None:
        """Store a recognised file's pages (with words) and its searchable PDF, so every
        instance can serve its exports; they expire with the job."""
        with trio.fail_after(STORE_TIMEOUT * 2):
            payload = json.dumps(document.to_json(), ensure_ascii=False).encode()
            await self.log.keep_result(job_id, document.file_index, "doc", payload)
            if pdf is not None:
                await self.log.keep_result(job_id, document.file_index, "pdf", pdf)

    async def document(self, job_id: str, file_index: int) -> Document | None:
        """A recognised file's pages as its owner stored them, or None."""
        with trio.fail_after(STORE_TIMEOUT):
            stored = await self.log.result(job_id, file_index, "doc")
        return None if stored is None else document_from_json(json.loads(stored))

    async def searchable_pdf(self, job_id: str, file_index: int) -> bytes | None:
        """A recognised file's searchable PDF as its owner made it, or None."""
        with trio.fail_after(STORE_TIMEOUT * 2):
            return await self.log.result(job_id, file_index, "pdf")

    # Health, leases, lost instances ------------------------------------------------

    def _store_failed(self, error: BaseException) -> None:
        self.errors += 1
        if not is_store_error(error):
            # Not Redis refusing or not answering: a bug of ours. Its traceback goes to
            # the log (a store failure is logged once, when it begins), again at most once
            # a minute while the same error repeats; the task still retries, as it would
            # after Redis failed.
            described, now = describe_error(error), trio.current_time()
            last = self._last_bug
            if last is None or last[0] != described or now - last[1] >= _BUG_LOG_INTERVAL:
                self._last_bug = (described, now)
                logger.error("a task of the store failed on an error not Redis's", exc_info=error)
        elif self.ready:
            logger.warning("the store %s failed: %s", redacted(self._url), describe_error(error))
        self.ready = False
        if self._down_since is None:
            self._down_since = trio.current_time()

    @property
    def _url(self) -> str:
        return self._settings.redis_url or ""

    async def _health_forever(self) -> None:
        lease_ms = round(self._settings.instance_lease * 1000)
        renew_every = max(0.2, self._settings.instance_lease / 3)
        renewed_at = -float("inf")
        while True:
            try:
                with trio.fail_after(STORE_TIMEOUT):
                    await self.client.ping()
                    now = trio.current_time()
                    if now - renewed_at >= renew_every:
                        await self.client.set(key("instance", self.instance_id), b"1", px=lease_ms)
                        await self.client.sadd(key("instances"), [self.instance_id])
                        renewed_at = now
            except Exception as error:
                self._store_failed(error)
                self._healthy_since = None
                self._end_if_down_too_long()
            else:
                if not self.ready:
                    logger.info("the store %s is reachable", redacted(self._url))
                self.ready, self._down_since = True, None
                if self._healthy_since is None:
                    self._healthy_since = trio.current_time()
            await trio.sleep(HEALTH_INTERVAL)

    def _end_if_down_too_long(self) -> None:
        since = self._down_since
        if since is None or trio.current_time() - since < self._settings.upload_timeout:
            return
        for handle in [*self._local.running(), *self._mirrors.running()]:
            handle.cancel("store_unavailable")
            handle.end_with_error("store_unavailable", _MESSAGES["store_unavailable"])

    async def _sweep_forever(self) -> None:
        while True:
            await trio.sleep(SWEEP_INTERVAL)
            # Only a sweeper that has itself reached Redis for a whole lease judges
            # others: after a pause of Redis, every instance first gets a chance to
            # renew its lease (none is taken for lost because Redis was away).
            healthy_since = self._healthy_since
            settle = self._settings.instance_lease + HEALTH_INTERVAL
            if healthy_since is None or trio.current_time() - healthy_since < settle:
                continue
            try:
                with trio.fail_after(STORE_TIMEOUT * 5):
                    await self._sweep()
            except Exception as error:
                self._store_failed(error)

    async def _sweep(self) -> None:
        members = await self.client.smembers(key("instances"))
        for member in members:
            instance = member.decode() if isinstance(member, bytes) else member
            if instance == self.instance_id or await self.client.exists(
                [key("instance", instance)]
            ):
                continue
            # One sweeper per lost instance at a time.
            claimed = await self.client.set(
                key("instance", instance, "sweep"), b"1", condition=PureToken.NX, px=5000
            )
            if not claimed:
                continue
            jobs = await self.client.smembers(running_key(instance))
            for job in jobs:
                await self._end_lost_job(job.decode() if isinstance(job, bytes) else job, instance)
            self.instances_lost += 1
            logger.warning("instance %s was lost with %d running jobs", instance, len(jobs))
            await self.client.srem(key("instances"), [instance])

    async def _end_lost_job(self, job_id: str, owner: str) -> None:
        last = await self.log.last_seq(job_id)
        if last is None:
            await self.client.srem(running_key(owner), [job_id])
            return
        envelope = Envelope(
            event=ProcessingError(
                error=ErrorInfo(code="instance_lost", message=_MESSAGES["instance_lost"])
            ),
            job_id=job_id,
            seq=last + 1,
        )
        created = await self.log.created_at(job_id) or _timestamp(envelope.timestamp)
        await self.log.append(
            job_id,
            last + 1,
            encode_event(envelope),
            terminal=True,
            owner=owner,
            created_at=created,
        )

    async def leave(self) -> None:
        """Stop cleanly (shutdown, with the store's tasks still running): write what is
        waiting, then withdraw this instance's lease, so no other instance reports it lost.
        If its jobs' last events could not be written, it stays in ``instances`` and the
        others end those jobs with ``instance_lost`` once its lease lapses. Bounded."""
        with trio.move_on_after(STORE_TIMEOUT * 2) as flushing:
            while self._pending.queue:
                await self._appended.wait()
        with trio.move_on_after(STORE_TIMEOUT):
            await self.client.delete([key("instance", self.instance_id)])
            if not flushing.cancelled_caught and not self._local.running():
                await self.client.srem(key("instances"), [self.instance_id])

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The store's tasks (replication, the firehose tail, health and lease, the
        sweep), until cancelled; ready once Redis first answered or after one check."""
        async with trio.open_nursery() as nursery:
            with contextlib.suppress(Exception):
                with trio.fail_after(STORE_TIMEOUT):
                    await self.client.ping()
                    self.ready = True
            nursery.start_soon(self._replicate_forever)
            nursery.start_soon(self._tail_forever)
            nursery.start_soon(self._health_forever)
            nursery.start_soon(self._sweep_forever)
            task_status.started()


def _has_open_job(queue: deque[Envelope]) -> bool:
    """Whether some job's newest event in ``queue`` is not its terminal one."""
    newest: dict[str | None, bool] = {}
    for envelope in queue:
        newest[envelope.job_id] = envelope.is_terminal
    return not all(newest.values())


def _timestamp(moment: datetime) -> str:
    return moment.isoformat()
