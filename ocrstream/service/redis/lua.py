"""The OCR queue's operations as Lua scripts: each one runs atomically inside Redis.

Every script takes the key prefix as ``ARGV[1]`` and builds its keys from it (the keys
are per job and per unit, so they cannot all be named up front; this rules out Redis
Cluster, which the SPEC does not ask for). Times are Redis's own ``TIME`` in
milliseconds, so leases mean the same to every machine whatever their clocks say.

Keys (under the prefix), see :mod:`ocrstream.service.redis.queue`:

    queue:ready          list of job ids that have queued units (a job at most once, as a rule)
    queue:job:{job}      list of the job's queued unit ids, in page order
    queue:units:{job}    set of the job's live unit ids (queued or leased), for cancel_job
    queue:files:{job}    hash: file key -> how many live units of the job read that file
    file:{job}:{index}   a file's bytes, deleted with the last live unit that reads it
    unit:{uid}           hash: job, owner, file, req, tries, attempt, worker (lease holder)
    queue:leases         zset: leased uid -> lease deadline (ms)
    queue:wake           list of wake-up tokens, about one per queued unit (BLPOP by idle
                         takers; a unit taken uses one up, a take that finds none clears them)
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
    "EXCHANGE",
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

# A unit gone (done, failed, dropped) no longer needs its file: the file's bytes are
# deleted with the last of its units. Only files counted here are (a file stored by a peer
# that does not count its units is that peer's to delete).
_RELEASE_FILE = """
local function release_file(p, job, file)
  local files = p .. 'queue:files:' .. job
  if redis.call('HEXISTS', files, file) == 1 then
    if redis.call('HINCRBY', files, file, -1) <= 0 then
      redis.call('HDEL', files, file)
      redis.call('DEL', file)
    end
  end
end
"""

#: ARGV: prefix, tries, ttl ms, max wake tokens, then six per unit: uid, job, owner, file
#: key, request JSON, the file's bytes (or '' when they are stored already). Units join
#: their jobs' queues in ARGV order. Returns one status per unit: 1 queued; 0 queued
#: already (a retried call); -1 refused, nothing done: its file's bytes are not in the
#: store (send them), or a unit of its job before it in this call was refused (so
#: that its job's units still join in order when sent again).
ENQUEUE = """
local p, tries, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ready, wake = p .. 'queue:ready', p .. 'queue:wake'
local tokens = tonumber(ARGV[4]) - redis.call('LLEN', wake)
local statuses, refused = {}, {}
for i = 5, #ARGV, 6 do
  local uid, job, file, data = ARGV[i], ARGV[i + 1], ARGV[i + 3], ARGV[i + 5]
  local unit = p .. 'unit:' .. uid
  local status = 1
  if refused[job] then
    status = -1
  elseif redis.call('EXISTS', unit) == 1 then
    status = 0
  elseif data ~= '' then
    redis.call('SET', file, data, 'PX', ttl)
  elseif redis.call('PEXPIRE', file, ttl) == 0 then
    status = -1
  end
  if status == -1 then
    refused[job] = true
  elseif status == 1 then
    redis.call('HSET', unit, 'job', job, 'owner', ARGV[i + 2], 'file', file,
               'req', ARGV[i + 4], 'tries', tries, 'attempt', 0)
    redis.call('PEXPIRE', unit, ttl)
    local files = p .. 'queue:files:' .. job
    redis.call('HINCRBY', files, file, 1)
    redis.call('PEXPIRE', files, ttl)
    local queue = p .. 'queue:job:' .. job
    if redis.call('RPUSH', queue, uid) == 1 then
      redis.call('RPUSH', ready, job)
    end
    redis.call('PEXPIRE', queue, ttl)
    local units = p .. 'queue:units:' .. job
    redis.call('SADD', units, uid)
    redis.call('PEXPIRE', units, ttl)
    if tokens > 0 then
      redis.call('RPUSH', wake, 1)
      tokens = tokens - 1
    end
  end
  statuses[#statuses + 1] = status
end
redis.call('PEXPIRE', ready, ttl)
redis.call('PEXPIRE', wake, ttl)
return statuses
"""

# The head job of ``queue:ready`` gives its first unit and goes to the tail if it has
# more: round robin by job, page order within a job. The unit leased to ``worker`` comes
# as {uid, job, owner, file, req, attempt, file bytes} (the bytes nil when the worker holds
# that file already, ``held`` naming it, or it is gone); false when nothing is queued. A
# unit taken uses up one wake-up token (nobody else need wake for it); none queued, there
# are none left.
_TAKE = """
local function take(p, worker, lease, held)
  local ready = p .. 'queue:ready'
  for _ = 1, 100 do
    local job = redis.call('LPOP', ready)
    if not job then
      redis.call('DEL', p .. 'queue:wake')
      return false
    end
    local queue = p .. 'queue:job:' .. job
    local uid = redis.call('LPOP', queue)
    if uid then
      if redis.call('LLEN', queue) > 0 then redis.call('RPUSH', ready, job) end
      local unit = p .. 'unit:' .. uid
      if redis.call('EXISTS', unit) == 1 then
        redis.call('LPOP', p .. 'queue:wake')
        local attempt = redis.call('HINCRBY', unit, 'attempt', 1)
        redis.call('HSET', unit, 'worker', worker)
        redis.call('ZADD', p .. 'queue:leases', now + tonumber(lease), uid)
        local f = redis.call('HMGET', unit, 'job', 'owner', 'file', 'req')
        local data = false
        if not held[f[3]] then data = redis.call('GET', f[3]) end
        return {uid, f[1], f[2], f[3], f[4], attempt, data}
      end
    end
  end
  return false
end
"""

# The holder's outcome goes to the owner's results stream and the unit is forgotten.
# 1: delivered; 0: not this holder's any more (cancelled, taken over, gone): dropped.
_COMPLETE = (
    _RELEASE_FILE
    + """
local function complete(p, uid, worker, attempt, outcome, maxlen, stream_ttl)
  local unit = p .. 'unit:' .. uid
  local f = redis.call('HMGET', unit, 'worker', 'attempt', 'job', 'owner', 'file')
  if f[1] ~= worker or f[2] ~= attempt then return 0 end
  if redis.call('ZREM', p .. 'queue:leases', uid) == 0 then return 0 end
  local results = p .. 'results:' .. f[4]
  redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*', 'uid', uid, 'outcome', outcome)
  redis.call('PEXPIRE', results, tonumber(stream_ttl))
  redis.call('SREM', p .. 'queue:units:' .. f[3], uid)
  redis.call('DEL', unit)
  release_file(p, f[3], f[5])
  return 1
end
"""
)

#: ARGV: prefix, worker slot, lease ms, the file key the slot holds (or ''). Returns
#: {uid, job, owner, file, req, attempt, file bytes} or nil (see ``_TAKE``).
TAKE = _NOW + _TAKE + "return take(ARGV[1], ARGV[2], ARGV[3], {[ARGV[4]] = true})"

#: ARGV: prefix, lease ms, then three per unit: uid, worker slot, attempt. Returns per
#: unit 1: renewed; 0: no longer this holder's (cancelled, taken over or gone).
RENEW = (
    _NOW
    + """
local p = ARGV[1]
local leases, until_ = p .. 'queue:leases', now + tonumber(ARGV[2])
local renewed = {}
for i = 3, #ARGV, 3 do
  local uid = ARGV[i]
  local f = redis.call('HMGET', p .. 'unit:' .. uid, 'worker', 'attempt')
  local ok = 0
  if f[1] == ARGV[i + 1] and f[2] == ARGV[i + 2] and redis.call('ZSCORE', leases, uid) then
    redis.call('ZADD', leases, 'XX', until_, uid)
    ok = 1
  end
  renewed[#renewed + 1] = ok
end
return renewed
"""
)

#: ARGV: prefix, uid, worker slot, attempt, outcome, stream max length, stream ttl ms.
#: 1: delivered to the owner's results stream; 0: not this holder's any more (dropped).
COMPLETE = _COMPLETE + "return complete(unpack(ARGV, 1, 7))"

# A unit its holder hands back (stopping, or it waited too long in a worker's hands) goes
# to the front of its job's queue, and this try does not count. 1 if it was held.
_HAND_BACK = """
local function hand_back(p, uid, worker, attempt)
  local unit = p .. 'unit:' .. uid
  local f = redis.call('HMGET', unit, 'worker', 'attempt', 'job')
  if f[1] ~= worker or f[2] ~= attempt then return 0 end
  if redis.call('ZREM', p .. 'queue:leases', uid) == 0 then return 0 end
  redis.call('HINCRBY', unit, 'attempt', -1)
  to_front(p, unit, uid, f[3])
  return 1
end
"""

#: A worker process's one round trip: ARGV: prefix, worker, lease ms, stream max length,
#: stream ttl ms, then
#:   n, and n triples uid, attempt, outcome: units to complete (as COMPLETE);
#:   m, and m pairs uid, attempt: units to hand back (as RELEASE; they keep their order);
#:   k, units to take (as TAKE), and h, and h file keys whose bytes the worker holds.
#: Returns {{1/0 per unit completed: delivered}, then per unit taken {uid, job, owner,
#: file, req, attempt, file bytes}}; a file's bytes come with the first unit of the
#: call that reads it (and not at all when held).
EXCHANGE = (
    _NOW
    + _TO_FRONT
    + _HAND_BACK
    + _TAKE
    + _COMPLETE
    + """
local p, worker, lease = ARGV[1], ARGV[2], ARGV[3]
local at = 6
local delivered = {}
for _ = 1, tonumber(ARGV[at]) do
  delivered[#delivered + 1] = complete(
    p, ARGV[at + 1], worker, ARGV[at + 2], ARGV[at + 3], ARGV[4], ARGV[5])
  at = at + 3
end
at = at + 1
local back = tonumber(ARGV[at])
for j = back, 1, -1 do
  hand_back(p, ARGV[at + 2 * j - 1], worker, ARGV[at + 2 * j])
end
at = at + 2 * back + 1
local wanted, held = tonumber(ARGV[at]), {}
for j = at + 2, at + 1 + tonumber(ARGV[at + 1]) do
  held[ARGV[j]] = true
end
local reply = {delivered}
for _ = 1, wanted do
  local unit = take(p, worker, lease, held)
  if not unit then break end
  held[unit[4]] = true
  reply[#reply + 1] = unit
end
return reply
"""
)

#: ARGV: prefix, stream max length, stream ttl ms, the "worker lost" outcome.
#: Returns {requeued, failed}: expired leases go back to the front of their job's queue
#: while tries remain, else their owner gets the "lost" outcome.
REAP = (
    _NOW
    + _TO_FRONT
    + _RELEASE_FILE
    + """
local p = ARGV[1]
local leases = p .. 'queue:leases'
local expired = redis.call('ZRANGE', leases, '-inf', now, 'BYSCORE', 'LIMIT', 0, 100)
local requeued, failed = 0, 0
for _, uid in ipairs(expired) do
  redis.call('ZREM', leases, uid)
  local unit = p .. 'unit:' .. uid
  local f = redis.call('HMGET', unit, 'job', 'owner', 'attempt', 'tries', 'file')
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
      release_file(p, f[1], f[5])
      failed = failed + 1
    end
  end
end
return {requeued, failed}
"""
)

#: ARGV: prefix, uid... Drops each unit: a queued one never starts, a leased one is
#: named on the cancel channel so its worker kills it. Returns how many existed.
ABANDON = (
    _RELEASE_FILE
    + """
local p = ARGV[1]
local dropped = 0
for i = 2, #ARGV do
  local uid = ARGV[i]
  local unit = p .. 'unit:' .. uid
  local job, file = unpack(redis.call('HMGET', unit, 'job', 'file'))
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
    release_file(p, job, file)
    dropped = dropped + 1
  end
end
return dropped
"""
)

#: ARGV: prefix, job. Drops every unit of the job and its files, and names the job on
#: the cancel channel.
CANCEL_JOB = """
local p, job = ARGV[1], ARGV[2]
local units = p .. 'queue:units:' .. job
local uids = redis.call('SMEMBERS', units)
for _, uid in ipairs(uids) do
  redis.call('ZREM', p .. 'queue:leases', uid)
  redis.call('DEL', p .. 'unit:' .. uid)
end
local files = p .. 'queue:files:' .. job
for _, file in ipairs(redis.call('HKEYS', files)) do
  redis.call('DEL', file)
end
redis.call('DEL', units, files, p .. 'queue:job:' .. job)
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
RELEASE = _TO_FRONT + _HAND_BACK + "return hand_back(ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
