-- claim_jobs.lua: move up to LIMIT ready jobs of one queue to the active set, leased
-- to one worker, and return their fields.
--
-- KEYS[1]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[2]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[3]  {p:q}:active        zset of claimed job ids, score = lease deadline ms
-- KEYS[4]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[5]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  lease_deadline_ms (int, epoch ms)
-- ARGV[3]  worker id (string)
-- ARGV[4]  limit (int >= 1): the most jobs to claim
-- ARGV[5]  priority bound (int): prioritized scores below it outrank the ready list
-- ARGV[6]  "1" when now_ms was read before a blocking wait in the same pipeline:
--          then a job's started_ms is at least its enqueued_ms and run_at_ms
--          (optional; absent means now_ms is the claim's time)
--
-- Returns a flat array; per claimed id: the id, N (the count of items that follow),
-- then N items alternating field name and value (the hash as the claim left it,
-- read with one HGETALL before the claim's HSET and patched in Lua). N = 0
-- means the id had no hash (expired or deleted): it is dropped from the queue. An
-- id whose job is already cancelled is dropped and left out of the reply: it must
-- not run. Each id taken off counts towards the limit, so the work stays bounded.
-- The move is atomic: a claimed id is never in neither the queue nor the active set.

local now_ms = tonumber(ARGV[1])
local deadline_ms = ARGV[2]
local worker_id = ARGV[3]
local limit = tonumber(ARGV[4])
local after_wait = ARGV[6] == '1'
local bound = tonumber(ARGV[5])
local has_prioritized = redis.call('EXISTS', KEYS[2]) == 1

local function next_id()
    if has_prioritized then
        local top = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
        if top[1] == nil then
            has_prioritized = false
        elseif tonumber(top[2]) < bound then
            -- A higher priority than the default list's jobs: it goes first.
            redis.call('ZREM', KEYS[2], top[1])
            return top[1]
        end
    end
    local job_id = redis.call('LPOP', KEYS[1])
    if job_id then
        return job_id
    end
    if has_prioritized then
        -- The list is empty, so lower priorities get their turn.
        local low = redis.call('ZPOPMIN', KEYS[2])
        if low[1] then
            return low[1]
        end
    end
    return nil
end

-- The ids to claim, in order. Without prioritized jobs one LPOP takes them all.
local function take_ids()
    if not has_prioritized then
        return redis.call('LPOP', KEYS[1], limit) or {}
    end
    local ids = {}
    for _ = 1, limit do
        local job_id = next_id()
        if not job_id then
            break
        end
        ids[#ids + 1] = job_id
    end
    return ids
end

-- Fields the claim sets; the reply carries their new values, not the stored ones.
local claim_sets = {status = true, started_ms = true, worker = true, attempts = true}

local out = {}
local leases = {}
for _, job_id in ipairs(take_ids()) do
    local job_key = KEYS[5] .. job_id
    -- One read gives existence, status and the times, and the reply's fields.
    local fields = redis.call('HGETALL', job_key)
    local known = {}
    for f = 1, #fields, 2 do
        known[fields[f]] = fields[f + 1]
    end
    if #fields == 0 then
        -- The hash expired or was deleted; the id alone cannot run.
        out[#out + 1] = job_id
        out[#out + 1] = 0
    elseif known.status == 'cancelled' then
        -- cancel_job.lua takes ids out of the queue, so only an id put back by
        -- hand or by an older version gets here; the cancel stands, and the id
        -- is simply not put back.
    else
        -- tonumber guards a corrupt field: a Lua error here would strand the id.
        local attempts = math.floor(tonumber(known.attempts) or 0) + 1
        local started_ms = now_ms
        if after_wait then
            -- The claim waited for the job: it started no earlier than the job
            -- existed, or fell due.
            started_ms = math.max(now_ms, tonumber(known.enqueued_ms) or 0,
                tonumber(known.run_at_ms) or 0)
        end
        redis.call('HSET', job_key, 'status', 'active', 'started_ms', started_ms,
            'worker', worker_id, 'attempts', attempts)
        leases[#leases + 1] = deadline_ms
        leases[#leases + 1] = job_id
        local reply = {}
        for f = 1, #fields, 2 do
            if not claim_sets[fields[f]] then
                reply[#reply + 1] = fields[f]
                reply[#reply + 1] = fields[f + 1]
            end
        end
        reply[#reply + 1] = 'status'
        reply[#reply + 1] = 'active'
        reply[#reply + 1] = 'started_ms'
        reply[#reply + 1] = string.format('%.0f', started_ms)
        reply[#reply + 1] = 'worker'
        reply[#reply + 1] = worker_id
        reply[#reply + 1] = 'attempts'
        reply[#reply + 1] = string.format('%.0f', attempts)
        out[#out + 1] = job_id
        out[#out + 1] = #reply
        for f = 1, #reply do
            out[#out + 1] = reply[f]
        end
    end
end
if #leases > 0 then
    redis.call('ZADD', KEYS[3], unpack(leases))
end

if redis.call('LLEN', KEYS[1]) > 0 or redis.call('EXISTS', KEYS[2]) == 1 then
    -- Jobs remain: keep the marker so the next blocked worker wakes too.
    redis.call('ZADD', KEYS[4], 0, 'ready')
else
    -- Drained: an idle worker should block, not wake to an empty queue.
    redis.call('DEL', KEYS[4])
end
return out
