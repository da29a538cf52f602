-- recover_expired.lua: take back jobs whose worker stopped renewing their lease.
--
-- KEYS[1]  {p:q}:active        zset of claimed job ids, score = lease deadline ms
-- KEYS[2]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[3]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[4]  {p:q}:dead          zset of dead job ids, score = finish ms
-- KEYS[5]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[6]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- ARGV[1]  now_ms (int, epoch ms): leases with a deadline before it have expired
-- ARGV[2]  limit (int >= 1): the most jobs to recover in this call
-- ARGV[3]  dead ttl_ms (int): lifetime of a job hash that goes dead here
-- ARGV[4]  channel prefix (string): PUBLISH to it plus the id when a job goes dead
-- ARGV[5]  error class recorded for a lost attempt (string)
--
-- Returns a flat array: requeued count, dead count, then the recovered ids.
-- A requeued job goes to the head of its queue: it has waited longest. Its lost
-- attempt counts, so a job that kills its worker every time ends dead.

local now_ms = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now_ms,
    'LIMIT', 0, ARGV[2])
local requeued, dead = 0, 0
local ids = {}
for _, job_id in ipairs(expired) do
    local job_key = KEYS[6] .. job_id
    redis.call('ZREM', KEYS[1], job_id)
    local job = redis.call('HMGET', job_key, 'attempts', 'max_attempts', 'worker', 'score')
    -- EXISTS, not a present field: a hash missing 'attempts' must not be stranded.
    if redis.call('EXISTS', job_key) == 1 then
        -- tonumber guards corrupt fields: an error here would strand the job.
        local attempts = tonumber(job[1]) or 0
        local max_attempts = tonumber(job[2]) or 1
        local lost = tonumber(redis.call('HGET', job_key, 'lost')) or 0
        local message = 'Worker ' .. (job[3] or '?') ..
            ' stopped renewing its lease during attempt ' .. attempts .. '.'
        redis.call('HSET', job_key, 'lost', lost + 1)
        redis.call('HSET', job_key, 'error_class', ARGV[5], 'error_message', message,
            'traceback', '', 'worker', '')
        if attempts >= max_attempts then
            redis.call('HSET', job_key, 'status', 'dead', 'finished_ms', now_ms)
            redis.call('ZADD', KEYS[4], now_ms, job_id)
            redis.call('PEXPIRE', job_key, ARGV[3])
            redis.call('PUBLISH', ARGV[4] .. job_id, 'dead')
            dead = dead + 1
        else
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
