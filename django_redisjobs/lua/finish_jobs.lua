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
-- Returns one integer per job: 1 recorded; 0 not recorded because the job is no
-- longer this worker's attempt (its lease was recovered); -1 the hash is gone.
-- "requeued" puts the job back at the head of its queue and gives the attempt back,
-- for a worker that stops before the job ends. A job whose cancel was requested
-- (cancel_requested = "1") is never queued again: "retrying" and "requeued" end it
-- as cancelled instead. Ending a job releases its unique lock, or leaves the lock
-- to expire at the job's unique_until_ms when that is still ahead.

local now_ms = tonumber(ARGV[1])
local worker_id = ARGV[2]
local channel_prefix = ARGV[3]
local results = {}
local wake = false

-- Release the job's unique lock if it still holds it, keeping its window.
local function release_unique(job_key, job_id)
    local unique = redis.call('HMGET', job_key, 'unique_key', 'unique_until_ms')
    if not unique[1] or unique[1] == '' then
        return
    end
    local lock = KEYS[10] .. unique[1]
    if redis.call('GET', lock) ~= job_id then
        -- A stale lock was taken over by a newer job; it is not ours to drop.
        return
    end
    local until_ms = tonumber(unique[2]) or 0
    if until_ms > now_ms then
        redis.call('PEXPIREAT', lock, until_ms)
        -- Keep the job readable for as long as its lock can name it.
        if redis.call('PEXPIRETIME', job_key) < until_ms then
            redis.call('PEXPIREAT', job_key, until_ms)
        end
    else
        redis.call('DEL', lock)
    end
end

local function ended(job_key, job_id, status, ttl_ms, finished_set)
    local ttl = tonumber(ttl_ms) or 0
    if ttl <= 0 then
        ttl = tonumber(redis.call('HGET', job_key, 'result_ttl_ms')) or 0
    end
    redis.call('HSET', job_key, 'status', status, 'finished_ms', now_ms)
    redis.call('ZADD', finished_set, now_ms, job_id)
    if ttl > 0 then
        redis.call('PEXPIRE', job_key, ttl)
    end
    release_unique(job_key, job_id)
    redis.call('PUBLISH', channel_prefix .. job_id, status)
end

local i = 4
while i <= #ARGV do
    local job_id, attempt, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local due_ms, ttl_ms = ARGV[i + 3], ARGV[i + 4]
    local job_key = KEYS[9] .. job_id
    local held = redis.call('HMGET', job_key, 'status', 'worker', 'attempts', 'score',
        'cancel_requested')
    if held[1] == false then
        results[#results + 1] = -1
    elseif held[1] ~= 'active' or held[2] ~= worker_id or held[3] ~= attempt then
        -- The lease expired and the job moved on; the current holder records it.
        results[#results + 1] = 0
    else
        redis.call('ZREM', KEYS[1], job_id)
        if held[5] == '1' and (outcome == 'retrying' or outcome == 'requeued') then
            -- Cancelled while it ran: another attempt would defy the request.
            outcome = 'cancelled'
        end
        if outcome ~= 'succeeded' and outcome ~= 'requeued' then
            redis.call('HSET', job_key, 'error_class', ARGV[i + 6],
                'error_message', ARGV[i + 7], 'traceback', ARGV[i + 8])
        end
        if outcome == 'succeeded' then
            redis.call('HSET', job_key, 'result', ARGV[i + 5], 'progress', '1')
            ended(job_key, job_id, 'succeeded', ttl_ms, KEYS[3])
        elseif outcome == 'retrying' then
            redis.call('HSET', job_key, 'status', 'retrying', 'run_at_ms', due_ms)
            redis.call('ZADD', KEYS[2], due_ms, job_id)
        elseif outcome == 'dead' then
            ended(job_key, job_id, 'dead', ttl_ms, KEYS[4])
        elseif outcome == 'cancelled' then
            ended(job_key, job_id, 'cancelled', ttl_ms, KEYS[5])
        else
            -- requeued: the worker stopped before the job ended; no attempt is used.
            redis.call('HSET', job_key, 'status', 'queued', 'worker', '',
                'attempts', tonumber(attempt) - 1)
            local score = tonumber(held[4])
            if score then
                redis.call('ZADD', KEYS[7], score, job_id)
            else
                redis.call('LPUSH', KEYS[6], job_id)
            end
            wake = true
        end
        results[#results + 1] = 1
    end
    i = i + 9
end

if wake then
    redis.call('ZADD', KEYS[8], 0, 'ready')
end
return results
