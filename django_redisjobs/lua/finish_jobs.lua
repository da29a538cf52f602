-- finish_jobs.lua: record how attempts ended, for jobs of one queue held by one worker.
--
-- KEYS[1]  {p:q}:active        zset of claimed job ids (lease deadlines)
-- KEYS[2]  {p:q}:scheduled     zset of job ids waiting for a time
-- KEYS[3]  {p:q}:succeeded     zset of succeeded job ids, score = finish ms
-- KEYS[4]  {p:q}:dead          zset of dead job ids, score = finish ms
-- KEYS[5]  {p:q}:cancelled     zset of cancelled job ids, score = finish ms
-- KEYS[6]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[7]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[8]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[9]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- KEYS[10] {p:q}:unique:       prefix of the queue's unique locks (see
--                              enqueue_jobs.lua); only used for a job that has a
--                              unique_key
-- KEYS[11] {p:q}:stats:        prefix of the queue's outcome counters: the
--                              script appends m:<epoch minute> and h:<epoch hour>
-- KEYS[12] {p:q}:retrying      zset of retrying job ids, score = due ms: an index
--                              of KEYS[2]'s retrying members (redis.pcall: a
--                              damaged index never fails the call)
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  worker id (string): only this worker's claims are recorded
-- ARGV[3]  channel prefix (string): PUBLISH to it plus the id when a job ends
-- then, per job, 9 values:
--   id; attempt (int, the attempts value seen at claim);
--   outcome: succeeded | retrying | dead | cancelled | requeued;
--   due_ms (int, retrying only); ttl_ms (int, hash lifetime once ended; when not
--   above 0, the job's result_ttl_ms field is used);
--   result (JSON, succeeded only); error class; error message; traceback
--
-- Every outcome but "requeued" is counted in the hashes of the current minute and
-- hour (a field per outcome: succeeded, retrying, dead, cancelled), one HINCRBY
-- per outcome and bucket for the whole call; a bucket gets its TTL (2 hours for a
-- minute, 25 hours for an hour) when the call creates its field. The counters
-- are written last, with redis.pcall: a damaged counter key never fails a call.
--
-- Every outcome but "requeued" appends the attempt to the job's `history` field
-- (see add_attempt in _prelude.lua).
--
-- Returns one integer per job: 1 recorded; 0 not recorded because the job is no
-- longer this worker's attempt (its lease was recovered); -1 the hash is gone, or
-- its key holds another type (nothing is written; the id stays in the active set
-- until recover_jobs.lua sets it aside).
-- "requeued" puts the job back at the head of its queue, gives the attempt back and
-- resets its progress to 0, for a worker that stops before the job ends. A job whose cancel was requested
-- (cancel_requested = "1") is never queued again: "retrying" and "requeued" end it
-- as cancelled instead. Ending a job releases its unique lock, or leaves the lock
-- to expire at the job's unique_until_ms when that is still ahead. A stored field
-- that is not a whole number (score, result_ttl_ms, unique_until_ms) counts as
-- absent.
--
-- Fails: only on a queue key of the wrong type, which only a hand write makes,
-- and never so that a job is lost. A retrying or requeued job's structure
-- (KEYS[2], or KEYS[6] and KEYS[7]) is written before its hash, so a wrong type
-- there fails with that job still active and leased (recover_jobs.lua takes it
-- back later) and the jobs before it recorded. The active set, the finished sets
-- and the marker are written last, for the whole call: a wrong type there fails
-- after every job's hash was written; ended jobs still expire by their TTL, and
-- recover_jobs.lua drops an id left in the active set without taking the job back.

local now_ms = tonumber(ARGV[1])
local worker_id = ARGV[2]
local channel_prefix = ARGV[3]
local results = {}
local wake = false

-- Ids leaving the active set, and members per finished set: one ZREM and one ZADD
-- per set for the whole call, not per job.
local unleased = {}
local finished = {}
-- Outcome -> how many of this call's jobs ended so (the per-minute counters).
local counted = {}
local MINUTE_TTL_MS = 7200000
local HOUR_TTL_MS = 90000000

-- End a job: `fields` (name, value pairs) are written with its status in one HSET;
-- `held` is what the job's HMGET read (see below).
local function ended(job_key, job_id, status, ttl_ms, finished_set, fields, held)
    local ttl = as_int(ttl_ms) or 0
    if ttl <= 0 then
        ttl = as_int(held[8]) or 0
    end
    fields[#fields + 1] = 'status'
    fields[#fields + 1] = status
    fields[#fields + 1] = 'finished_ms'
    fields[#fields + 1] = now_ms
    redis.call('HSET', job_key, unpack(fields))
    local members = finished[finished_set]
    if not members then
        members = {}
        finished[finished_set] = members
    end
    members[#members + 1] = now_ms
    members[#members + 1] = job_id
    if ttl > 0 then
        redis.call('PEXPIRE', job_key, ttl)
    end
    release_unique(KEYS[10], held[6], job_key, job_id, held[7], now_ms)
    redis.call('PUBLISH', channel_prefix .. job_id, status)
end

local i = 4
while i <= #ARGV do
    local job_id, attempt, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local due_ms, ttl_ms = ARGV[i + 3], ARGV[i + 4]
    local job_key = KEYS[9] .. job_id
    local held = read_job('HMGET', job_key, 'status', 'worker', 'attempts', 'score',
        'cancel_requested', 'unique_key', 'unique_until_ms', 'result_ttl_ms',
        'started_ms', 'history')
    if not held or held[1] == false then
        results[#results + 1] = -1
    elseif held[1] ~= 'active' or held[2] ~= worker_id or held[3] ~= attempt then
        -- The lease expired and the job moved on; the current holder records it.
        results[#results + 1] = 0
    else
        unleased[#unleased + 1] = job_id
        if held[5] == '1' and (outcome == 'retrying' or outcome == 'requeued') then
            -- Cancelled while it ran: another attempt would defy the request.
            outcome = 'cancelled'
        end
        -- Each ending appends the attempt to the history, but for the common
        -- case: a first attempt that succeeds writes none, as the job's own
        -- fields (worker, started_ms, finished_ms, status) describe it and
        -- Job.history reads it from them; the long field would also turn the
        -- hash from a listpack into a hash table. A requeued job gives its
        -- attempt back, so it has none to add.
        local history
        if outcome ~= 'requeued' and not (outcome == 'succeeded'
                and attempt == '1' and (held[10] or '') == '') then
            history = add_attempt(held[10], attempt, worker_id, held[9], now_ms,
                outcome, ARGV[i + 6], ARGV[i + 7])
        end
        local errors = {'error_class', ARGV[i + 6], 'error_message', ARGV[i + 7],
            'traceback', ARGV[i + 8]}
        local success = {'result', ARGV[i + 5], 'progress', '1'}
        if history then
            errors[#errors + 1] = 'history'
            errors[#errors + 1] = history
            success[#success + 1] = 'history'
            success[#success + 1] = history
        end
        if outcome == 'succeeded' then
            ended(job_key, job_id, 'succeeded', ttl_ms, KEYS[3], success, held)
        elseif outcome == 'retrying' then
            errors[#errors + 1] = 'status'
            errors[#errors + 1] = 'retrying'
            errors[#errors + 1] = 'run_at_ms'
            errors[#errors + 1] = due_ms
            redis.call('ZADD', KEYS[2], due_ms, job_id)
            redis.pcall('ZADD', KEYS[12], due_ms, job_id)
            redis.call('HSET', job_key, unpack(errors))
        elseif outcome == 'dead' then
            ended(job_key, job_id, 'dead', ttl_ms, KEYS[4], errors, held)
        elseif outcome == 'cancelled' then
            ended(job_key, job_id, 'cancelled', ttl_ms, KEYS[5], errors, held)
        else
            -- requeued: the worker stopped before the job ended; no attempt is used.
            push_ready(KEYS[6], KEYS[7], job_id, held[4], true)
            redis.call('HSET', job_key, 'status', 'queued', 'worker', '',
                'attempts', tonumber(attempt) - 1, 'progress', '0')
            wake = true
        end
        if outcome ~= 'requeued' then
            counted[outcome] = (counted[outcome] or 0) + 1
        end
        results[#results + 1] = 1
    end
    i = i + 9
end

if #unleased > 0 then
    redis.call('ZREM', KEYS[1], unpack(unleased))
end
for set_key, members in pairs(finished) do
    redis.call('ZADD', set_key, unpack(members))
end
if wake then
    redis.call('ZADD', KEYS[8], 0, 'ready')
end
-- The counters are for the admin's chart: the outcomes above are already written.
local minute_key = KEYS[11] .. 'm:' .. string.format('%.0f', math.floor(now_ms / 60000))
local hour_key = KEYS[11] .. 'h:' .. string.format('%.0f', math.floor(now_ms / 3600000))
for outcome, n in pairs(counted) do
    -- A reply equal to n means this call created the field: the bucket is new
    -- (or gained its first such outcome), so it gets its TTL now.
    if redis.pcall('HINCRBY', minute_key, outcome, n) == n then
        redis.pcall('PEXPIRE', minute_key, MINUTE_TTL_MS)
    end
    if redis.pcall('HINCRBY', hour_key, outcome, n) == n then
        redis.pcall('PEXPIRE', hour_key, HOUR_TTL_MS)
    end
end
return results
