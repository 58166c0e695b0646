"""The OCR queue in Redis, shared by the submitting instances and the workers.

The unit of work is one page of one file (a *unit*, id ``uid``). The submitting side
queues units (:meth:`~OCRQueue.enqueue_many`: several in one step, in order), the first
of a file also storing the file's bytes (``file:{job}:{index}``); Redis counts each file's
live units and deletes its bytes with the last (done, failed, dropped). A worker process
anywhere takes the next units in turn (round robin by job, page order within a job),
holds them under a lease it renews, and completes them with their outcomes, which go to
their owners' results streams; :meth:`~OCRQueue.exchange` does all three for a worker in
one step. Any process may :meth:`~OCRQueue.reap`: a lease that ran out sends its unit back
to the front of its job's queue while tries remain (OCR_ATTEMPTS), else the owner is told
the worker was lost. Each operation is one Lua script (:mod:`~ocrstream.service.redis.lua`),
so it is atomic however many processes race.

Memory stays bounded: units, job queues and files carry a TTL the owner renews while it
waits (a dead owner's keys expire); results streams are trimmed, read entries deleted and
the stream expires; wake tokens are capped. Cancelling is two-sided: queued units are
removed (they never start) and leased ones are named on the ``cancel`` channel, which
every worker process listens to; a worker also learns it at its next lease renewal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import anyio
import coredis
import trio

from ocrstream.core.errors import OCRError
from ocrstream.service.redis import lua
from ocrstream.service.redis.connection import PREFIX, key
from ocrstream.service.redis.wire import encode_error, request_from_json, request_to_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ocrstream.engines.worker import PageRequest

__all__ = [
    "CANCEL_CHANNEL",
    "LOST_MESSAGE",
    "MAX_WAKE_TOKENS",
    "RESULTS_MAXLEN",
    "RESULTS_TTL",
    "UNIT_TTL",
    "Exchanged",
    "NewUnit",
    "OCRQueue",
    "QueueDepth",
    "Reaped",
    "Result",
    "Unit",
    "file_key",
    "is_store_error",
]

#: The pub/sub channel naming cancelled units (``u:{uid}``) and jobs (``j:{job}``).
CANCEL_CHANNEL = key("cancel")
#: What a page whose last try's worker was lost fails with (SPEC "Several instances").
LOST_MESSAGE = "the worker recognising it was lost"
#: Seconds a unit, a job's queue or a file lives unless its owner renews it.
UNIT_TTL = 120.0
#: Entries a results stream keeps at most (approximately); read ones are deleted anyway.
RESULTS_MAXLEN = 10_000
#: Seconds a results stream outlives its last write (or its owner's last read).
RESULTS_TTL = 600.0
#: Wake-up tokens kept at most (idle takers also look every few seconds without one).
MAX_WAKE_TOKENS = 10_000


_STORE_ERRORS = (
    coredis.exceptions.RedisError,
    OSError,
    TimeoutError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    # A store call bounded by ``trio.fail_after(STORE_TIMEOUT)`` that ran past it.
    trio.TooSlowError,
)


def file_key(job_id: str, file_index: int) -> str:
    """The key of a job's file bytes."""
    return key("file", job_id, file_index)


def is_store_error(error: BaseException) -> bool:
    """Whether ``error`` means "Redis did not answer" (refused, reset, timed out, past a
    caller's STORE_TIMEOUT, or the connection closed under the command: coredis then
    raises anyio's closed/broken stream errors), also when coredis hands it over inside
    an exception group from its connection tasks."""
    if isinstance(error, BaseExceptionGroup):
        return all(is_store_error(inner) for inner in error.exceptions)
    return isinstance(error, _STORE_ERRORS)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewUnit:
    """A unit to queue (:meth:`OCRQueue.enqueue_many`).

    Attributes:
        uid: its id.
        job_id: its job.
        owner: the instance that waits for its outcome.
        file: the key of its file's bytes (:func:`file_key`).
        request: which page, and how.
        data: the file's bytes, stored in the same step; None when they are stored.
    """

    uid: str
    job_id: str
    owner: str
    file: str
    request: PageRequest
    data: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """A unit a worker slot holds under a lease.

    Attributes:
        uid: the unit's id.
        job_id: its job.
        owner: the instance waiting for its outcome.
        file_key: where the file's bytes are.
        request: which page, and how.
        attempt: this try's number (1 for the first).
        data: the file's bytes, unless the slot said it holds them (or they are gone:
            the job ended).
    """

    uid: str
    job_id: str
    owner: str
    file_key: str
    request: PageRequest
    attempt: int
    data: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchanged:
    """What one :meth:`OCRQueue.exchange` did: per unit completed, whether its outcome
    was delivered; the units taken."""

    delivered: list[bool]
    taken: list[Unit]


@dataclass(frozen=True, slots=True)
class Reaped:
    """What one :meth:`OCRQueue.reap` did."""

    requeued: int
    failed: int


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """The cluster's queue: units waiting, units being recognised, live worker slots."""

    queued: int
    leased: int
    workers: int


@dataclass(frozen=True, slots=True)
class Result:
    """An outcome read from an owner's results stream."""

    entry_id: bytes
    uid: str
    outcome: bytes


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unit(reply: object) -> Unit:
    """The unit a TAKE replied with: uid, job, owner, file, request, attempt, bytes."""
    uid, job_id, owner, file, request, attempt, *data = cast("list[bytes | int | None]", reply)
    return Unit(
        uid=_text(uid),
        job_id=_text(job_id),
        owner=_text(owner),
        file_key=_text(file),
        request=request_from_json(cast("bytes", request)),
        attempt=int(cast("int", attempt)),
        data=cast("bytes | None", data[0] if data else None),
    )


class OCRQueue:
    """The queue's operations on the Redis of ``client``.

    Args:
        client: an open coredis client (bytes responses).
        lease: OCR_LEASE seconds.
        attempts: OCR_ATTEMPTS, tries a unit gets in all.
        ttl: seconds units and files live unless renewed (:meth:`refresh`).
    """

    def __init__(
        self, client: coredis.Redis[bytes], *, lease: float, attempts: int, ttl: float = UNIT_TTL
    ) -> None:
        self.client = client
        self.lease = lease
        self.attempts = attempts
        self.ttl = ttl
        self._enqueue = client.register_script(lua.ENQUEUE)
        self._take = client.register_script(lua.TAKE)
        self._renew = client.register_script(lua.RENEW)
        self._complete = client.register_script(lua.COMPLETE)
        self._exchange = client.register_script(lua.EXCHANGE)
        self._reap = client.register_script(lua.REAP)
        self._abandon = client.register_script(lua.ABANDON)
        self._cancel_job = client.register_script(lua.CANCEL_JOB)
        self._depth = client.register_script(lua.DEPTH)
        self._heartbeat = client.register_script(lua.HEARTBEAT)
        self._release = client.register_script(lua.RELEASE)
        self._lost = encode_error(OCRError("ocr_failed", LOST_MESSAGE))

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self.lease * 1000))

    # The submitting side.

    async def enqueue_many(self, units: Sequence[NewUnit]) -> list[bool]:
        """Queue ``units`` in one step, in their order (each job's units join its queue
        in the order given).

        Returns:
            per unit, whether it is queued (now, or by an earlier try of this call);
            False: refused, nothing done, because its file's bytes are not in the store
            (they were deleted with the file's last unit, or Redis lost them) or a unit
            of its job before it was refused. Send the refused units again, in order,
            the first of each file with its bytes.
        """
        if not units:
            return []
        args: list[str | int | bytes] = [PREFIX, self.attempts, self._ttl_ms, MAX_WAKE_TOKENS]
        for unit in units:
            args += [
                unit.uid,
                unit.job_id,
                unit.owner,
                unit.file,
                request_to_json(unit.request),
                unit.data or b"",
            ]
        statuses = cast("list[int]", await self._enqueue(args=args))
        return [int(status) >= 0 for status in statuses]

    async def enqueue(
        self,
        *,
        uid: str,
        job_id: str,
        owner: str,
        file: str,
        request: PageRequest,
        data: bytes | None = None,
    ) -> bool:
        """Queue page ``request`` of the file at key ``file`` as unit ``uid`` of
        ``job_id``; its outcome goes to ``owner``'s results stream. One unit of
        :meth:`enqueue_many`.

        Args:
            data: the file's bytes, stored at ``file`` in the same step; None when they
                are stored already.

        Returns:
            False when refused: ``data`` is None and the file's bytes are not stored.
        """
        unit = NewUnit(uid=uid, job_id=job_id, owner=owner, file=file, request=request, data=data)
        return (await self.enqueue_many([unit]))[0]

    async def abandon(self, uids: Iterable[str]) -> int:
        """Drop units whose outcome nobody wants any more: queued ones never start,
        leased ones are killed by their workers. Returns how many still existed."""
        uids = list(uids)
        if not uids:
            return 0
        return int(cast("int", await self._abandon(args=[PREFIX, *uids])))

    async def cancel_job(self, job_id: str) -> int:
        """Drop every unit of ``job_id`` and tell the workers holding any to kill them.
        Returns how many units there were."""
        return int(cast("int", await self._cancel_job(args=[PREFIX, job_id])))

    async def refresh(
        self, *, owner: str, uids: Iterable[str], files: Iterable[str], jobs: Iterable[str]
    ) -> set[str]:
        """Renew the TTL of a waiting owner's units, files, jobs' queues, results stream
        and of the ready list (so a long wait in a busy cluster loses nothing).

        Returns:
            the uids that no longer exist (done since, or lost: a Redis that came back
            empty, say).
        """
        uids = list(uids)
        async with self.client.pipeline(transaction=False) as pipe:
            renewed = [pipe.pexpire(key("unit", uid), self._ttl_ms) for uid in uids]
            for name in files:
                pipe.pexpire(name, self._ttl_ms)
            for job_id in set(jobs):
                pipe.pexpire(key("queue", "job", job_id), self._ttl_ms)
                pipe.pexpire(key("queue", "units", job_id), self._ttl_ms)
                pipe.pexpire(key("queue", "files", job_id), self._ttl_ms)
            pipe.pexpire(key("queue", "ready"), self._ttl_ms)
            pipe.pexpire(key("results", owner), round(RESULTS_TTL * 1000))
        return {uid for uid, done in zip(uids, renewed, strict=True) if not await done}

    async def read_results(
        self, owner: str, after: bytes, *, block: float, forget: Iterable[Result] = ()
    ) -> list[Result]:
        """Outcomes for ``owner`` past entry ``after``, waiting up to ``block`` seconds
        for the first.

        Args:
            forget: results read before and handed over: deleted from the stream in the
                same round trip.
        """
        stream = key("results", owner)
        ids = [result.entry_id for result in forget]
        block_ms = max(1, round(block * 1000))
        if ids:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.xdel(stream, ids)
                read = pipe.xread({stream: after}, count=100, block=block_ms)
            response = await read
        else:
            response = await self.client.xread({stream: after}, count=100, block=block_ms)
        results = []
        for entries in (response or {}).values():
            for entry in entries:
                fields = entry.field_values
                results.append(
                    Result(
                        entry_id=cast("bytes", entry.identifier),
                        uid=_text(fields[b"uid"]),
                        outcome=cast("bytes", fields[b"outcome"]),
                    )
                )
        return results

    # The worker side.

    async def wait_for_work(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a wake-up token (one per queued unit).

        Returns:
            whether a token came (False: time to look anyway).
        """
        token = await self.client.blpop([key("queue", "wake")], timeout=seconds)
        return token is not None

    async def take(self, worker: str, *, holding: str | None = None) -> Unit | None:
        """The next unit in turn, leased to slot ``worker``; None when none is queued.

        Args:
            holding: the file key whose bytes the slot keeps from its last unit; the
                unit comes with its file's bytes (:attr:`Unit.data`) unless it is that one.
        """
        reply: object = await self._take(args=[PREFIX, worker, self._lease_ms, holding or ""])
        return _unit(reply) if reply else None

    async def exchange(
        self,
        worker: str,
        *,
        complete: Sequence[tuple[Unit, bytes]] = (),
        release: Sequence[Unit] = (),
        take: int = 0,
        holding: Iterable[str] = (),
    ) -> Exchanged:
        """A worker's round trip: :meth:`complete` units with their outcomes,
        :meth:`release` others (they keep their order), then :meth:`take` up to ``take``
        units, all leased to ``worker``, in one step.

        Args:
            holding: file keys whose bytes the worker keeps; a file's bytes come with the
                first unit taken that reads it, unless held.
        """
        args: list[str | int | bytes] = [
            PREFIX,
            worker,
            self._lease_ms,
            RESULTS_MAXLEN,
            round(RESULTS_TTL * 1000),
            len(complete),
        ]
        for unit, outcome in complete:
            args += [unit.uid, unit.attempt, outcome]
        args.append(len(release))
        for unit in release:
            args += [unit.uid, unit.attempt]
        held = list(holding)
        args += [take, len(held), *held]
        reply = cast("list[list[int] | list[bytes | int | None]]", await self._exchange(args=args))
        return Exchanged(
            delivered=[bool(ok) for ok in reply[0]], taken=[_unit(unit) for unit in reply[1:]]
        )

    async def renew(self, unit: Unit, worker: str) -> bool:
        """Extend ``worker``'s lease of ``unit``.

        Returns:
            False when the unit is not the slot's any more (cancelled, taken over):
            stop working on it.
        """
        return (await self.renew_many([(unit, worker)]))[0]

    async def renew_many(self, held: Sequence[tuple[Unit, str]]) -> list[bool]:
        """:meth:`renew` the leases of several (unit, worker slot) pairs in one step."""
        if not held:
            return []
        args: list[str | int] = [PREFIX, self._lease_ms]
        for unit, worker in held:
            args += [unit.uid, worker, unit.attempt]
        return [bool(ok) for ok in cast("list[int]", await self._renew(args=args))]

    async def complete(self, unit: Unit, worker: str, outcome: bytes) -> bool:
        """Hand ``unit``'s outcome to its owner and forget the unit.

        Returns:
            False when it was not the slot's any more (the outcome is dropped).
        """
        reply: object = await self._complete(args=self._completion(unit, worker, outcome))
        return bool(reply)

    def _completion(self, unit: Unit, worker: str, outcome: bytes) -> list[str | int | bytes]:
        return [
            PREFIX,
            unit.uid,
            worker,
            unit.attempt,
            outcome,
            RESULTS_MAXLEN,
            round(RESULTS_TTL * 1000),
        ]

    async def release(self, unit: Unit, worker: str) -> bool:
        """Hand ``unit`` back to the front of its job's queue (a worker stopping before
        it finished); this try does not count. Returns whether the slot still held it."""
        reply: object = await self._release(args=[PREFIX, unit.uid, worker, unit.attempt])
        return bool(reply)

    async def heartbeat(self, slots: Iterable[str], *, ttl: float) -> None:
        """Count ``slots`` as live worker capacity for ``ttl`` seconds."""
        await self._heartbeat(args=[PREFIX, max(1, round(ttl * 1000)), *slots])

    async def forget_workers(self, slots: Iterable[str]) -> None:
        """Remove ``slots`` from the live capacity (a clean stop)."""
        slots = list(slots)
        if slots:
            await self.client.zrem(key("queue", "workers"), slots)

    # Anyone.

    async def reap(self) -> Reaped:
        """Requeue (or fail, past OCR_ATTEMPTS) up to 100 units whose lease ran out."""
        reply: object = await self._reap(
            args=[PREFIX, RESULTS_MAXLEN, round(RESULTS_TTL * 1000), self._lost]
        )
        requeued, failed = cast("list[int]", reply)
        return Reaped(int(requeued), int(failed))

    async def depth(self) -> QueueDepth:
        """Units queued and leased, and live worker slots, cluster-wide."""
        queued, leased, workers = cast("list[int]", await self._depth(args=[PREFIX]))
        return QueueDepth(int(queued), int(leased), int(workers))
