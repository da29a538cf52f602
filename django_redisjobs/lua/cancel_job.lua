-- cancel_job.lua: cancel one job: end it if it waits, or flag it if it runs.
--
-- KEYS[1]  {p:q}:job:<id>      the job's hash
-- KEYS[2]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[3]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[4]  {p:q}:scheduled     zset of job ids waiting for a time (delays, retries)
-- KEYS[5]  {p:q}:cancelled     zset of cancelled job ids, score = finish ms
-- KEYS[6]  {p:q}:unique:       prefix of the queue's unique locks (see
--                              enqueue_jobs.lua); only used for a job that has a
--                              unique_key
-- KEYS[7]  {p:q}:retrying      zset indexing retrying ids (redis.pcall: a damaged
--                              index never fails the call)
-- ARGV[1]  job id (string)
-- ARGV[2]  now_ms (int, epoch ms)
-- ARGV[3]  ttl_ms (int): lifetime of the cancelled hash when the job's
--          result_ttl_ms field is not above 0
-- ARGV[4]  channel (string): the job's end channel, told "cancelled"
--
-- Returns an integer: 1 the job was queued, scheduled or retrying and is now
-- cancelled (out of every queue structure, in the cancelled zset, with a TTL, its
-- unique lock released as finish_jobs.lua does); 2 the job is active, and its
-- cancel_requested field is now "1" for the job and its worker to honour; 0 the job
-- had already ended (nothing changes); -1 there is no such job, or its key holds
-- another type (nothing changes: no job can be read from it).
-- LREM makes cancelling a default-priority queued job O(N) in the ready list's
-- length; the other cases are O(log N).
--
-- Fails: a queue key (KEYS[2] to KEYS[5]) of the wrong type, which only a hand
-- write makes, raises WRONGTYPE before anything changes: the job is read and the
-- keys it will write are type-checked first. A field that is not a whole number
-- (score, result_ttl_ms, unique_until_ms) counts as absent; a unique lock of the
-- wrong type is left alone.

local job_id = ARGV[1]
local now_ms = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
    return -1
end
local job = read_job('HMGET', KEYS[1], 'status', 'score', 'result_ttl_ms',
    'unique_key', 'unique_until_ms')
if not job then
    return -1
end
local status = job[1]
if status == 'active' then
    -- Only the job's own code can stop it; the worker checks before it starts.
    redis.call('HSET', KEYS[1], 'cancel_requested', '1')
    return 2
end
if status == 'queued' then
    check_types(KEYS[2], 'list', KEYS[3], 'zset', KEYS[5], 'zset')
    pull_ready(KEYS[2], KEYS[3], job_id, job[2])
elseif status == 'scheduled' or status == 'retrying' then
    check_types(KEYS[4], 'zset', KEYS[5], 'zset')
    redis.call('ZREM', KEYS[4], job_id)
    redis.pcall('ZREM', KEYS[7], job_id)
else
    -- succeeded, dead or cancelled: an ended job stays as it ended.
    return 0
end

redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now_ms,
    'cancel_requested', '1')
redis.call('ZADD', KEYS[5], now_ms, job_id)
local ttl_ms = as_int(job[3]) or 0
if ttl_ms <= 0 then
    ttl_ms = tonumber(ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ttl_ms)
release_unique(KEYS[6], job[4], KEYS[1], job_id, job[5], now_ms)
redis.call('PUBLISH', ARGV[4], 'cancelled')
return 1
