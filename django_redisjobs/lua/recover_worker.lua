-- recover_worker.lua: take back the jobs of one worker known to be dead, without
-- waiting for their leases to expire (a supervisor saw its worker process exit).
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
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  dead ttl_ms (int): lifetime of a job hash that goes dead here
-- ARGV[3]  channel prefix (string): PUBLISH to it plus the id when a job ends here
-- ARGV[4]  error class recorded for a lost attempt (string)
-- ARGV[5]  cancelled ttl_ms (int): lifetime of a job hash cancelled here, when its
--          result_ttl_ms field is not above 0
-- ARGV[6]  worker id (string): only jobs this worker holds are taken back
-- ARGV[7]  reason (string): how the worker died; the message adds the attempt
-- ARGV[8..] candidate job ids (the caller read them from KEYS[1])
--
-- Returns a flat array: requeued count, dead count, then the recovered ids.
-- A candidate that is no longer in the active set, or is held by another worker
-- (its lease expired and another worker claimed it), is left alone: the check and
-- the move happen in one script, so a live worker's job is never taken. Otherwise
-- the job is treated exactly as recover_expired.lua treats an expired lease (keep
-- the two in step): the lost attempt counts, `lost` goes up, and the job goes to
-- the head of its queue, or dead when out of attempts, or cancelled when its
-- cancel was requested (among the ids but in neither count); a job that ends here
-- releases its unique lock.

local now_ms = tonumber(ARGV[1])
local worker_id = ARGV[6]
local requeued, dead = 0, 0
local ids = {}

-- Release the job's unique lock if it still holds it, keeping its window.
local function release_unique(job_key, job_id)
    local unique = redis.call('HMGET', job_key, 'unique_key', 'unique_until_ms')
    if not unique[1] or unique[1] == '' then
        return
    end
    local lock = KEYS[8] .. unique[1]
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
    redis.call('HSET', job_key, 'status', status, 'finished_ms', now_ms)
    redis.call('ZADD', finished_set, now_ms, job_id)
    redis.call('PEXPIRE', job_key, ttl_ms)
    release_unique(job_key, job_id)
    redis.call('PUBLISH', ARGV[3] .. job_id, status)
end

for i = 8, #ARGV do
    local job_id = ARGV[i]
    local job_key = KEYS[6] .. job_id
    local job = redis.call('HMGET', job_key, 'attempts', 'max_attempts', 'worker',
        'score', 'cancel_requested', 'result_ttl_ms', 'status')
    if redis.call('ZSCORE', KEYS[1], job_id) == false then
        -- Already recorded or recovered: nothing to take back.
    elseif job[7] ~= 'active' or job[3] ~= worker_id then
        -- Another worker's claim now (or a hash gone astray): not ours to touch.
    else
        redis.call('ZREM', KEYS[1], job_id)
        -- tonumber guards corrupt fields: an error here would strand the job.
        local attempts = tonumber(job[1]) or 0
        local max_attempts = tonumber(job[2]) or 1
        local lost = tonumber(redis.call('HGET', job_key, 'lost')) or 0
        local message = ARGV[7] .. ' during attempt ' .. attempts .. '.'
        redis.call('HSET', job_key, 'lost', lost + 1, 'error_class', ARGV[4],
            'error_message', message, 'traceback', '', 'worker', '')
        if job[5] == '1' then
            -- Its cancel was requested: running it again would defy the request.
            local ttl_ms = tonumber(job[6]) or 0
            if ttl_ms <= 0 then
                ttl_ms = ARGV[5]
            end
            ended(job_key, job_id, 'cancelled', ttl_ms, KEYS[7])
        elseif attempts >= max_attempts then
            -- Out of attempts: a job that kills its worker every time ends here.
            ended(job_key, job_id, 'dead', ARGV[2], KEYS[4])
            dead = dead + 1
        else
            -- Back to the head of its queue: it has waited longest.
            redis.call('HSET', job_key, 'status', 'queued')
            if tonumber(job[4]) then
                redis.call('ZADD', KEYS[3], tonumber(job[4]), job_id)
            else
                redis.call('LPUSH', KEYS[2], job_id)
            end
            requeued = requeued + 1
        end
        ids[#ids + 1] = job_id
    end
end

if requeued > 0 then
    redis.call('ZADD', KEYS[5], 0, 'ready')
end
local out = {requeued, dead}
for _, job_id in ipairs(ids) do
    out[#out + 1] = job_id
end
return out
