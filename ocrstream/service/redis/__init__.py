"""The second backend: several instances and OCR workers sharing one Redis.

Keys (all under ``ocrstream:``; every one expires or is trimmed, see each module):

    job:{id}                 hash: created_at, owner instance; expires RESULT_TTL after the end
    job:{id}:events          stream: the job's frames, entry id ``0-{seq + 1}`` (idempotent
                             appends), field ``f`` = the frame's bytes without its ``id:``
    job:{id}:doc:{i}         string: a recognised file's pages with words (JSON), for exports
    firehose                 stream: every job's frames, ids ``{n}-0`` from ``firehose:seq``
                             (one numbering for every instance), trimmed to EVENT_BUFFER
    instance:{iid}           string with a PX lease of INSTANCE_LEASE; ``instance:{iid}:jobs``
                             the set of its running jobs, ``instances`` the set of instances

The OCR queue's keys are :mod:`ocrstream.service.redis.queue`'s.
"""

from __future__ import annotations

__all__: list[str] = []
