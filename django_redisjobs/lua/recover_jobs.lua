-- recover_jobs.lua: take back jobs whose worker is gone.
--
-- Two ways to know a worker is gone, one set of rules for its jobs:
-- * its lease expired (ARGV[7] empty): every active job whose lease deadline is
--   before now_ms, up to the limit; any worker's scheduler tick calls this;
-- * a supervisor saw its process die (ARGV[7] names the worker): the candidate ids
--   in ARGV[9..] that this worker still holds, at once, without waiting for the
--   lease. A candidate no longer active, or held by another worker (its lease ran
--   out and another claimed it), is left alone: the check and the move are one
--   step, so a live worker's job is never taken.
--
-- KEYS[1]  {p:q}:active        zset of claimed job ids, score = lease deadline ms
-- KEYS[2]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[3]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[4]  {p:q}:dead          zset of dead job ids, score = finish ms
-- KEYS[5]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[6]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- KEYS[7]  {p:q}:cancelled     zset of cancelled job ids, score = finish ms
-- KEYS[8]  {p:q}:unique:       prefix of the queue's unique locks (see
--                              enqueue_jobs.lua); only used for a job that has a
--                              unique_key
-- ARGV[1]  now_ms (int, epoch ms): leases with a deadline before it have expired
-- ARGV[2]  limit (int >= 1): the most expired leases to take in this call
-- ARGV[3]  dead ttl_ms (int): lifetime of a job hash that goes dead here
-- ARGV[4]  channel prefix (string): PUBLISH to it plus the id when a job ends here
-- ARGV[5]  error class recorded for a lost attempt (string)
-- ARGV[6]  cancelled ttl_ms (int): lifetime of a job hash cancelled here, when its
--          result_ttl_ms field is not above 0
-- ARGV[7]  worker id (string): "" to take expired leases, else the dead worker
-- ARGV[8]  reason (string): how that worker died ("" with expired leases); the
--          recorded message adds the attempt
-- ARGV[9..] candidate job ids (with a worker id; the caller read them from KEYS[1])
--
-- A taken-back attempt is appended to the job's `history` as "lost".
--
-- Returns a flat array: requeued count, dead count, N, the N recovered ids, then a
-- pair per id set aside (the id and the reason).
-- A requeued job goes to the head of its queue: it has waited longest. Its lost
-- attempt counts, so a job that kills its worker every time ends dead. A job whose
-- cancel was requested (cancel_requested = "1") ends cancelled instead of going
-- back to its queue; it is among the ids but in neither count. A job that ends
-- here releases its unique lock as finish_jobs.lua does. A candidate in the active
-- set whose key holds another type is set aside: it leaves the active set, and the
-- key stays for a person to look at. A field that is not a whole number (attempts,
-- max_attempts, lost, result_ttl_ms, score) counts as absent. An id in the active
-- set whose job's status is no longer "active" (it ended, or is queued again)
-- only leaves the active set.
--
-- Fails: a queue key (KEYS[1] to KEYS[5], KEYS[7]) of the wrong type, which only a
-- hand write makes, raises WRONGTYPE before anything changes: every candidate is
-- read and every key type-checked before the first write. Damaged job data never
-- fails the call.

local now_ms = tonumber(ARGV[1])
local worker_id = ARGV[7]
local candidates = {}
if worker_id == '' then
    candidates = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now_ms,
        'LIMIT', 0, ARGV[2])
else
    for i = 9, #ARGV do
        candidates[#candidates + 1] = ARGV[i]
    end
end
local requeued, dead = 0, 0
local ids = {}

local function ended(job_key, job_id, job, status, ttl_ms, finished_set)
    redis.call('HSET', job_key, 'status', status, 'finished_ms', now_ms)
    redis.call('ZADD', finished_set, now_ms, job_id)
    redis.call('PEXPIRE', job_key, ttl_ms)
    release_unique(KEYS[8], job[8], job_key, job_id, job[9], now_ms)
    redis.call('PUBLISH', ARGV[4] .. job_id, status)
end

-- Whether the candidate is a job to take back; see the two ways above.
local function is_lost(job_id, holder, status)
    if worker_id == '' then
        return true
    end
    if redis.call('ZSCORE', KEYS[1], job_id) == false then
        -- Already recorded or recovered: nothing to take back.
        return false
    end
    -- Another worker's claim now (or a hash gone astray): not ours to touch.
    return status == 'active' and holder == worker_id
end

local function take_back(job_key, job_id, job)
    local attempts = as_int(job[1]) or 0
    local max_attempts = as_int(job[2]) or 1
    local reason = ARGV[8]
    if reason == '' then
        reason = 'Worker ' .. (job[3] or '?') .. ' stopped renewing its lease'
    end
    local message = reason .. ' during attempt ' .. attempts .. '.'
    redis.call('HSET', job_key, 'lost', (as_int(job[10]) or 0) + 1,
        'error_class', ARGV[5], 'error_message', message, 'traceback', '',
        'worker', '', 'history', add_attempt(job[12], attempts, job[3], job[11],
            now_ms, 'lost', ARGV[5], message))
    if job[5] == '1' then
        -- Its cancel was requested: running it again would defy the request.
        local ttl_ms = as_int(job[6]) or 0
        if ttl_ms <= 0 then
            ttl_ms = ARGV[6]
        end
        ended(job_key, job_id, job, 'cancelled', ttl_ms, KEYS[7])
    elseif attempts >= max_attempts then
        -- Out of attempts: a job that kills its worker every time ends here.
        ended(job_key, job_id, job, 'dead', ARGV[3], KEYS[4])
        dead = dead + 1
    else
        redis.call('HSET', job_key, 'status', 'queued')
        push_ready(KEYS[2], KEYS[3], job_id, job[4], true)
        requeued = requeued + 1
    end
    ids[#ids + 1] = job_id
end

-- Reads: which candidates to take back, and which to set aside.
local taken, set_aside, seen = {}, {}, {}

local function inspect(job_id)
    local job_key = KEYS[6] .. job_id
    local job, reason = read_job('HMGET', job_key, 'attempts', 'max_attempts',
        'worker', 'score', 'cancel_requested', 'result_ttl_ms', 'status',
        'unique_key', 'unique_until_ms', 'lost', 'started_ms', 'history')
    if not job then
        -- Its holder cannot be read; only an id still leased here is set aside.
        if worker_id == '' or redis.call('ZSCORE', KEYS[1], job_id) then
            set_aside[#set_aside + 1] = job_id
            set_aside[#set_aside + 1] = reason
        end
    elseif is_lost(job_id, job[3], job[7]) then
        -- EXISTS, not a present field: a hash missing 'attempts' is not stranded.
        local exists = redis.call('EXISTS', job_key) == 1
        -- A job that ended, or waits in a queue, only leaves the active set (a
        -- finish_jobs.lua call that failed part-way can leave such an id).
        local moved_on = job[7] and job[7] ~= 'active'
        taken[#taken + 1] = {job_id, job_key, exists and not moved_on and job}
    end
end

for _, job_id in ipairs(candidates) do
    -- A candidate named twice is looked at once.
    if not seen[job_id] then
        seen[job_id] = true
        inspect(job_id)
    end
end

if #taken + #set_aside > 0 then
    check_types(KEYS[2], 'list', KEYS[3], 'zset', KEYS[4], 'zset', KEYS[5], 'zset',
        KEYS[7], 'zset')
end
for i = 1, #set_aside, 2 do
    redis.call('ZREM', KEYS[1], set_aside[i])
end
for _, candidate in ipairs(taken) do
    redis.call('ZREM', KEYS[1], candidate[1])
    if candidate[3] then
        take_back(candidate[2], candidate[1], candidate[3])
    end
end

if requeued > 0 then
    redis.call('ZADD', KEYS[5], 0, 'ready')
end
local out = {requeued, dead, #ids}
for _, job_id in ipairs(ids) do
    out[#out + 1] = job_id
end
for _, item in ipairs(set_aside) do
    out[#out + 1] = item
end
return out
