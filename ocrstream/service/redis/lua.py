"""The OCR queue's operations as Lua scripts: each one runs atomically inside Redis.

Every script takes the key prefix as ``ARGV[1]`` and builds its keys from it (the keys
are per job and per unit, so they cannot all be named up front; this rules out Redis
Cluster, which the SPEC does not ask for). Times are Redis's own ``TIME`` in
milliseconds, so leases mean the same to every machine whatever their clocks say.

Keys (under the prefix), see :mod:`ocrstream.service.redis.queue`:

    queue:ready          list of job ids that have queued units (a job at most once, as a rule)
    queue:job:{job}      list of the job's queued unit ids, in page order
    queue:units:{job}    set of the job's live unit ids (queued or leased), for cancel_job
    unit:{uid}           hash: job, owner, file, req, tries, attempt, worker
    queue:leases         zset: leased uid -> lease deadline (ms)
    queue:wake           list of wake-up tokens, one per queued unit (BLPOP by idle takers)
    queue:workers        zset: worker slot -> heartbeat deadline (ms), for capacity
    results:{owner}      stream of outcomes for the instance ``owner`` (uid, outcome)
    cancel               pub/sub channel: ``u:{uid}`` or ``j:{job}``
"""

from __future__ import annotations

__all__ = [
    "ABANDON",
    "CANCEL_JOB",
    "COMPLETE",
    "DEPTH",
    "ENQUEUE",
    "HEARTBEAT",
    "REAP",
    "RELEASE",
    "RENEW",
    "TAKE",
]

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

#: ARGV: prefix, uid, job, owner, file key, request JSON, tries, ttl ms, max wake tokens,
#: and the file's bytes (or an empty string when they are stored already).
# A unit no longer held goes back to the front of its job's queue (the job to the ready
# list if its queue was empty), living as long as the unit, and a taker is woken. REAP
# and RELEASE both do this.
_TO_FRONT = """
local function to_front(p, unit, uid, job)
  redis.call('HDEL', unit, 'worker')
  local queue = p .. 'queue:job:' .. job
  if redis.call('LPUSH', queue, uid) == 1 then
    redis.call('LPUSH', p .. 'queue:ready', job)
  end
  local ttl = redis.call('PTTL', unit)
  if ttl > 0 then
    redis.call('PEXPIRE', queue, ttl)
    redis.call('PEXPIRE', p .. 'queue:ready', ttl)
  end
  redis.call('RPUSH', p .. 'queue:wake', 1)
end
"""

ENQUEUE = """
local p, uid, job = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[8])
local unit = p .. 'unit:' .. uid
if redis.call('EXISTS', unit) == 1 then return 0 end  -- a retried enqueue
if ARGV[10] ~= '' then
  redis.call('SET', ARGV[5], ARGV[10], 'PX', ttl)
end
redis.call('HSET', unit, 'job', job, 'owner', ARGV[4], 'file', ARGV[5], 'req', ARGV[6],
           'tries', ARGV[7], 'attempt', 0)
redis.call('PEXPIRE', unit, ttl)
local queue = p .. 'queue:job:' .. job
local queued = redis.call('RPUSH', queue, uid)
redis.call('PEXPIRE', queue, ttl)
local units = p .. 'queue:units:' .. job
redis.call('SADD', units, uid)
redis.call('PEXPIRE', units, ttl)
if queued == 1 then
  redis.call('RPUSH', p .. 'queue:ready', job)
end
redis.call('PEXPIRE', p .. 'queue:ready', ttl)
local wake = p .. 'queue:wake'
if redis.call('LLEN', wake) < tonumber(ARGV[9]) then
  redis.call('RPUSH', wake, 1)
end
redis.call('PEXPIRE', wake, ttl)
return queued
"""

#: ARGV: prefix, worker slot, lease ms, the file key the slot holds (or ''). Returns
#: {uid, job, owner, file, req, attempt, file bytes} or nil; the bytes are nil when the
#: slot holds that file already (or it is gone).
#: The head job of ``queue:ready`` gives its first unit and goes to the tail if it has
#: more: round robin by job, page order within a job.
TAKE = (
    _NOW
    + """
local p = ARGV[1]
local ready = p .. 'queue:ready'
for _ = 1, 100 do
  local job = redis.call('LPOP', ready)
  if not job then return false end
  local queue = p .. 'queue:job:' .. job
  local uid = redis.call('LPOP', queue)
  if uid then
    if redis.call('LLEN', queue) > 0 then redis.call('RPUSH', ready, job) end
    local unit = p .. 'unit:' .. uid
    if redis.call('EXISTS', unit) == 1 then
      local attempt = redis.call('HINCRBY', unit, 'attempt', 1)
      redis.call('HSET', unit, 'worker', ARGV[2])
      redis.call('ZADD', p .. 'queue:leases', now + tonumber(ARGV[3]), uid)
      local f = redis.call('HMGET', unit, 'job', 'owner', 'file', 'req')
      local data = false
      if f[3] ~= ARGV[4] then data = redis.call('GET', f[3]) end
      return {uid, f[1], f[2], f[3], f[4], attempt, data}
    end
  end
end
return false
"""
)

#: ARGV: prefix, uid, worker slot, attempt, lease ms. 1: renewed; 0: no longer this
#: holder's (cancelled, taken over or gone).
RENEW = (
    _NOW
    + """
local p, uid = ARGV[1], ARGV[2]
local f = redis.call('HMGET', p .. 'unit:' .. uid, 'worker', 'attempt')
if f[1] ~= ARGV[3] or f[2] ~= ARGV[4] then return 0 end
if not redis.call('ZSCORE', p .. 'queue:leases', uid) then return 0 end
redis.call('ZADD', p .. 'queue:leases', 'XX', now + tonumber(ARGV[5]), uid)
return 1
"""
)

#: ARGV: prefix, uid, worker slot, attempt, outcome, stream max length, stream ttl ms.
#: 1: delivered to the owner's results stream; 0: not this holder's any more (dropped).
COMPLETE = """
local p, uid = ARGV[1], ARGV[2]
local unit = p .. 'unit:' .. uid
local f = redis.call('HMGET', unit, 'worker', 'attempt', 'job', 'owner')
if f[1] ~= ARGV[3] or f[2] ~= ARGV[4] then return 0 end
if redis.call('ZREM', p .. 'queue:leases', uid) == 0 then return 0 end
local results = p .. 'results:' .. f[4]
redis.call('XADD', results, 'MAXLEN', '~', ARGV[6], '*', 'uid', uid, 'outcome', ARGV[5])
redis.call('PEXPIRE', results, tonumber(ARGV[7]))
redis.call('SREM', p .. 'queue:units:' .. f[3], uid)
redis.call('DEL', unit)
return 1
"""

#: ARGV: prefix, stream max length, stream ttl ms, the "worker lost" outcome.
#: Returns {requeued, failed}: expired leases go back to the front of their job's queue
#: while tries remain, else their owner gets the "lost" outcome.
REAP = (
    _NOW
    + _TO_FRONT
    + """
local p = ARGV[1]
local leases = p .. 'queue:leases'
local expired = redis.call('ZRANGE', leases, '-inf', now, 'BYSCORE', 'LIMIT', 0, 100)
local requeued, failed = 0, 0
for _, uid in ipairs(expired) do
  redis.call('ZREM', leases, uid)
  local unit = p .. 'unit:' .. uid
  local f = redis.call('HMGET', unit, 'job', 'owner', 'attempt', 'tries')
  if f[1] then
    if tonumber(f[3]) < tonumber(f[4]) then
      to_front(p, unit, uid, f[1])
      requeued = requeued + 1
    else
      local results = p .. 'results:' .. f[2]
      redis.call('XADD', results, 'MAXLEN', '~', ARGV[2], '*', 'uid', uid, 'outcome', ARGV[4])
      redis.call('PEXPIRE', results, tonumber(ARGV[3]))
      redis.call('SREM', p .. 'queue:units:' .. f[1], uid)
      redis.call('DEL', unit)
      failed = failed + 1
    end
  end
end
return {requeued, failed}
"""
)

#: ARGV: prefix, uid... Drops each unit: a queued one never starts, a leased one is
#: named on the cancel channel so its worker kills it. Returns how many existed.
ABANDON = """
local p = ARGV[1]
local dropped = 0
for i = 2, #ARGV do
  local uid = ARGV[i]
  local unit = p .. 'unit:' .. uid
  local job = redis.call('HGET', unit, 'job')
  if job then
    if redis.call('ZREM', p .. 'queue:leases', uid) == 1 then
      redis.call('PUBLISH', p .. 'cancel', 'u:' .. uid)
    else
      local queue = p .. 'queue:job:' .. job
      redis.call('LREM', queue, 1, uid)
      if redis.call('LLEN', queue) == 0 then
        redis.call('LREM', p .. 'queue:ready', 0, job)
      end
    end
    redis.call('SREM', p .. 'queue:units:' .. job, uid)
    redis.call('DEL', unit)
    dropped = dropped + 1
  end
end
return dropped
"""

#: ARGV: prefix, job. Drops every unit of the job and names it on the cancel channel.
CANCEL_JOB = """
local p, job = ARGV[1], ARGV[2]
local units = p .. 'queue:units:' .. job
local uids = redis.call('SMEMBERS', units)
for _, uid in ipairs(uids) do
  redis.call('ZREM', p .. 'queue:leases', uid)
  redis.call('DEL', p .. 'unit:' .. uid)
end
redis.call('DEL', units, p .. 'queue:job:' .. job)
redis.call('LREM', p .. 'queue:ready', 0, job)
redis.call('PUBLISH', p .. 'cancel', 'j:' .. job)
return #uids
"""

#: ARGV: prefix. Returns {queued units, leased units, live worker slots}.
DEPTH = (
    _NOW
    + """
local p = ARGV[1]
local jobs = redis.call('LRANGE', p .. 'queue:ready', 0, -1)
local seen, queued = {}, 0
for _, job in ipairs(jobs) do
  if not seen[job] then
    seen[job] = true
    queued = queued + redis.call('LLEN', p .. 'queue:job:' .. job)
  end
end
local workers = p .. 'queue:workers'
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now)
return {queued, redis.call('ZCARD', p .. 'queue:leases'), redis.call('ZCARD', workers)}
"""
)

#: ARGV: prefix, ttl ms, slot... Marks the worker slots alive for ttl ms (capacity).
HEARTBEAT = (
    _NOW
    + """
local p = ARGV[1]
local workers = p .. 'queue:workers'
for i = 3, #ARGV do
  redis.call('ZADD', workers, now + tonumber(ARGV[2]), ARGV[i])
end
redis.call('PEXPIRE', workers, tonumber(ARGV[2]))
return #ARGV - 2
"""
)

#: ARGV: prefix, uid, worker slot, attempt. Hands a held unit back (a worker stopping):
#: it goes to the front of its job's queue and this try does not count. 1 if it was held.
RELEASE = (
    _TO_FRONT
    + """
local p, uid = ARGV[1], ARGV[2]
local unit = p .. 'unit:' .. uid
local f = redis.call('HMGET', unit, 'worker', 'attempt', 'job')
if f[1] ~= ARGV[3] or f[2] ~= ARGV[4] then return 0 end
if redis.call('ZREM', p .. 'queue:leases', uid) == 0 then return 0 end
redis.call('HINCRBY', unit, 'attempt', -1)
to_front(p, unit, uid, f[3])
return 1
"""
)
