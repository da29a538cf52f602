-- retry_jobs.lua: put dead, cancelled or retrying jobs of one queue back in its
-- ready queue, under the same id, with a fresh attempt count.
--
-- KEYS[1]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[2]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[3]  {p:q}:scheduled     zset of job ids waiting for a time (retrying ones)
-- KEYS[4]  {p:q}:dead          zset of dead job ids, score = finish ms
-- KEYS[5]  {p:q}:cancelled     zset of cancelled job ids, score = finish ms
-- KEYS[6]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[7]  {p:q}:job:          prefix of the queue's job hashes; the script
--                              appends each id (same hash tag, same slot)
-- KEYS[8]  {p:q}:retrying      zset indexing retrying ids (redis.pcall: a damaged
--                              index never fails the call)
-- ARGV[1]  now_ms (int, epoch ms): stored as the job's retried_ms
-- ARGV[2..] job ids
--
-- A retried job keeps its id, its arguments, its enqueued_ms and its `history`
-- (the earlier attempts stay listed); its attempt count starts again from 0, and
-- the fields of its last run (started_ms, finished_ms, worker, result, error,
-- traceback, progress, cancel_requested, lost, run_at_ms) are removed. Its hash
-- loses its TTL, as a waiting job's has none. A job that held a unique key does
-- not take it again: the lock was released when the job ended, and another job
-- may hold it now.
--
-- Returns one integer per id: 1 retried (now queued); 0 not retried, because the
-- job is queued, scheduled or active, or succeeded; -1 no such job, or its key
-- holds another type: its id is removed from the dead and cancelled zsets, where
-- it could only be a leftover of an expired hash, and nothing else changes.
--
-- Fails: a queue key (KEYS[1] to KEYS[5]) of the wrong type, which only a hand
-- write makes, raises WRONGTYPE before anything changes: they are checked first.
-- A stored score that is not a whole number counts as the default priority.

check_types(KEYS[1], 'list', KEYS[2], 'zset', KEYS[3], 'zset', KEYS[4], 'zset',
    KEYS[5], 'zset')

local now_ms = ARGV[1]
-- Where each status that may be retried keeps its id.
local held_in = {dead = KEYS[4], cancelled = KEYS[5], retrying = KEYS[3]}
local results = {}
local wake = false

for i = 2, #ARGV do
    local job_id = ARGV[i]
    local job_key = KEYS[7] .. job_id
    local job = read_job('HMGET', job_key, 'status', 'score')
    if not job or job[1] == false then
        redis.call('ZREM', KEYS[4], job_id)
        redis.call('ZREM', KEYS[5], job_id)
        results[#results + 1] = -1
    elseif not held_in[job[1]] then
        -- Waiting, running or succeeded: there is nothing to run again.
        results[#results + 1] = 0
    else
        redis.call('ZREM', held_in[job[1]], job_id)
        redis.pcall('ZREM', KEYS[8], job_id)
        redis.call('HDEL', job_key, 'attempts', 'started_ms', 'finished_ms', 'worker',
            'result', 'error_class', 'error_message', 'traceback', 'progress',
            'progress_message', 'cancel_requested', 'lost', 'run_at_ms')
        redis.call('HSET', job_key, 'status', 'queued', 'retried_ms', now_ms)
        redis.call('PERSIST', job_key)
        push_ready(KEYS[1], KEYS[2], job_id, job[2], false)
        wake = true
        results[#results + 1] = 1
    end
end

if wake then
    redis.call('ZADD', KEYS[6], 0, 'ready')
end
return results
