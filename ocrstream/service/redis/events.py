"""Jobs' event histories and the firehose in Redis Streams, appended by one atomic script.

Each event is appended once, by the instance that sequences its job, with
:data:`PUBLISH` (a Lua script, so the job's stream and the firehose never disagree):

* ``job:{id}:events`` gets entry id ``0-{seq + 1}``: appends are idempotent (a retry of an
  append that did land is a no-op), and reading the stream from any instance gives the
  job's frames in seq order. Field ``f`` holds the frame's bytes without its ``id:`` line,
  exactly as the sequencer encoded them, so every instance sends the same bytes.
* ``firehose`` gets entry id ``{n}-0`` with ``n`` from ``firehose:seq`` (INCR): one
  numbering for every instance, one apart from event to event. A new or emptied Redis
  starts it from the wall clock in microseconds (the embedded ring's rule), so ids keep
  increasing across restarts of Redis too. Trimmed to EVENT_BUFFER entries.
* ``job:{id}`` (hash: created_at, owner) and the owner's set of running jobs are kept on
  the way; every key of a job expires RESULT_TTL after its terminal event, and while it
  runs a generous backstop keeps renewing (:data:`RUNNING_TTL_SECONDS`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ocrstream.service.redis.connection import key

if TYPE_CHECKING:
    from collections.abc import Sequence

    import coredis
    from coredis.response.types import StreamEntry

__all__ = [
    "PUBLISH",
    "RUNNING_TTL_SECONDS",
    "Append",
    "FirehoseEntry",
    "RedisEventLog",
    "firehose_key",
    "job_events_key",
    "job_key",
    "job_results_key",
    "result_key",
    "running_key",
]

#: Seconds a running job's keys live without a new event (a backstop: a job whose owner
#: vanished is normally ended with ``instance_lost`` long before).
RUNNING_TTL_SECONDS = 24 * 3600

# A batch of events in one call (one round trip, in order).
# KEYS: firehose, firehose seq; then per event: job events, job hash, owner's running
#       set, the job's other keys (a set: its results)
# ARGV: firehose maxlen, now (us), result ttl (ms), running ttl (ms); then per event:
#       seq, frame, job id, terminal (0/1), created_at, owner
# Returns each event's firehose id (0: it was there already).
PUBLISH = """
local ids = {}
for i = 0, (#KEYS - 2) / 4 - 1 do
  local events, job, running, others = KEYS[3 + 4 * i], KEYS[4 + 4 * i], KEYS[5 + 4 * i],
    KEYS[6 + 4 * i]
  local seq, frame, job_id, terminal, created_at, owner = tonumber(ARGV[5 + 6 * i]),
    ARGV[6 + 6 * i], ARGV[7 + 6 * i], ARGV[8 + 6 * i], ARGV[9 + 6 * i], ARGV[10 + 6 * i]
  local n = 0
  local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)
  local dash = last[1] and string.find(last[1][1], '-')
  if not last[1] or tonumber(string.sub(last[1][1], dash + 1)) < seq + 1 then
    n = redis.call('INCR', KEYS[2])
    if n == 1 then
      -- A new (or emptied) Redis: number from the wall clock in microseconds, so ids
      -- stay above any this service handed out before.
      n = tonumber(ARGV[2])
      redis.call('SET', KEYS[2], ARGV[2])
    end
    -- string.format: Lua would write a number this large as 1.7e+15
    redis.call('XADD', events, string.format('0-%d', seq + 1), 'f', frame)
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], string.format('%d-0', n),
      'f', frame, 'j', job_id, 's', seq)
    redis.call('HSETNX', job, 'created_at', created_at)
    redis.call('HSETNX', job, 'owner', owner)
    if terminal == '1' then
      redis.call('PEXPIRE', events, ARGV[3])
      redis.call('PEXPIRE', job, ARGV[3])
      redis.call('SREM', running, job_id)
      for _, other in ipairs(redis.call('SMEMBERS', others)) do
        redis.call('PEXPIRE', other, ARGV[3])
      end
      redis.call('PEXPIRE', others, ARGV[3])
    else
      redis.call('PEXPIRE', events, ARGV[4])
      redis.call('PEXPIRE', job, ARGV[4])
      redis.call('SADD', running, job_id)
    end
  end
  ids[i + 1] = n
end
return ids
"""


def job_key(job_id: str) -> str:
    """The job's hash (created_at, owner)."""
    return key("job", job_id)


def job_events_key(job_id: str) -> str:
    """The job's stream of frames."""
    return key("job", job_id, "events")


def job_results_key(job_id: str) -> str:
    """The set of the job's result keys (they expire with it)."""
    return key("job", job_id, "results")


def result_key(job_id: str, file_index: int, kind: str) -> str:
    """A recognised file's stored result: ``doc`` (pages with words, JSON) or ``pdf``."""
    return key("job", job_id, kind, file_index)


def firehose_key() -> str:
    """The shared firehose stream."""
    return key("firehose")


def running_key(instance_id: str) -> str:
    """The set of jobs instance ``instance_id`` runs."""
    return key("instance", instance_id, "jobs")


class Append(NamedTuple):
    """One frame to append: its job, seq and bytes, whether it ends the job, the job's
    owner and creation time."""

    job_id: str
    seq: int
    frame: bytes
    terminal: bool
    owner: str
    created_at: str


@dataclass(frozen=True, slots=True)
class FirehoseEntry:
    """One firehose entry: its shared id, the frame's bytes, its job and seq."""

    ring_id: int
    frame: bytes
    job_id: str
    seq: int


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _seq_of(identifier: str | bytes) -> int:
    return int(_bytes(identifier).split(b"-", 1)[1]) - 1


class RedisEventLog:
    """Appends and reads of the job streams and the firehose.

    Args:
        client: the Redis client.
        event_buffer: EVENT_BUFFER, the firehose's length.
        result_ttl: RESULT_TTL seconds.
    """

    def __init__(self, client: coredis.Redis[bytes], *, event_buffer: int, result_ttl: float):
        self._client = client
        self._publish = client.register_script(PUBLISH)
        self._event_buffer = event_buffer
        self._result_ttl_ms = max(1, round(result_ttl * 1000))
        self._running_ttl_ms = max(self._result_ttl_ms, RUNNING_TTL_SECONDS * 1000)

    async def append(
        self,
        job_id: str,
        seq: int,
        frame: bytes,
        *,
        terminal: bool,
        owner: str,
        created_at: str,
    ) -> int:
        """Append one frame of job ``job_id``; returns its firehose id (0: it was there)."""
        (ring_id,) = await self.append_many(
            [Append(job_id, seq, frame, terminal, owner, created_at)]
        )
        return ring_id

    async def append_many(self, appends: Sequence[Append]) -> list[int]:
        """Append frames in order, in one round trip (one call of the script); returns
        their firehose ids (0 for one that was there already)."""
        if not appends:
            return []
        keys: list[str] = [firehose_key(), key("firehose", "seq")]
        args: list[str | bytes | int] = [
            self._event_buffer,
            time.time_ns() // 1000,
            self._result_ttl_ms,
            self._running_ttl_ms,
        ]
        for job_id, seq, frame, terminal, owner, created_at in appends:
            keys += [
                job_events_key(job_id),
                job_key(job_id),
                running_key(owner),
                job_results_key(job_id),
            ]
            args += [seq, frame, job_id, "1" if terminal else "0", created_at, owner]
        ids: object = await self._publish(keys=keys, args=args)
        assert isinstance(ids, list)
        assert len(ids) == len(appends)
        return [int(ring_id) for ring_id in ids]

    async def keep_result(self, job_id: str, file_index: int, kind: str, data: bytes) -> None:
        """Store a recognised file's result; it expires with its job."""
        name = result_key(job_id, file_index, kind)
        await self._client.set(name, data, px=self._running_ttl_ms)
        await self._client.sadd(job_results_key(job_id), [name])
        await self._client.pexpire(job_results_key(job_id), self._running_ttl_ms)

    async def result(self, job_id: str, file_index: int, kind: str) -> bytes | None:
        """A stored result, or None."""
        value = await self._client.get(result_key(job_id, file_index, kind))
        return None if value is None else _bytes(value)

    async def history(self, job_id: str, *, after: int = -1) -> list[tuple[int, bytes]]:
        """The job's frames with a seq greater than ``after``, as ``(seq, frame)``."""
        entries = await self._client.xrange(job_events_key(job_id), start=f"0-{after + 2}")
        return [(_seq_of(entry.identifier), _bytes(entry.field_values[b"f"])) for entry in entries]

    async def created_at(self, job_id: str) -> str | None:
        """When the job was created (RFC 3339), or None when Redis does not know it."""
        value = await self._client.hget(job_key(job_id), "created_at")
        return None if value is None else value.decode()

    async def last_seq(self, job_id: str) -> int | None:
        """The seq of the job's newest event, or None when it has none."""
        entries = await self._client.xrevrange(job_events_key(job_id), count=1)
        return _seq_of(entries[0].identifier) if entries else None

    async def firehose_after(
        self, ring_id: int | None, *, block_ms: int | None = None, count: int = 500
    ) -> list[FirehoseEntry]:
        """Firehose entries after ``ring_id`` (None: the newest EVENT_BUFFER, oldest
        first); with ``block_ms``, wait that long for the first one."""
        if ring_id is None:
            newest = await self._client.xrevrange(firehose_key(), count=self._event_buffer)
            return [_entry(entry) for entry in reversed(newest)]
        found = await self._client.xread(
            {firehose_key(): f"{ring_id}-0"}, count=count, block=block_ms
        )
        if not found:
            return []
        return [_entry(entry) for entries in found.values() for entry in entries]


def _entry(entry: StreamEntry) -> FirehoseEntry:
    values = entry.field_values
    return FirehoseEntry(
        ring_id=int(_bytes(entry.identifier).split(b"-", 1)[0]),
        frame=_bytes(values[b"f"]),
        job_id=_bytes(values[b"j"]).decode(),
        seq=int(values[b"s"]),
    )
