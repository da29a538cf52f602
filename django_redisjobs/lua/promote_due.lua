-- promote_due.lua: move scheduled jobs whose time has come to the ready structures.
--
-- KEYS[1]  {p:q}:scheduled     zset of job ids, score = due ms
-- KEYS[2]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[3]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[4]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[5]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  limit (int >= 1): the most jobs to move in this call
--
-- Returns {moved, next_due_ms}: how many jobs became ready, and the due ms of the
-- earliest job still scheduled (-1 when none), so the caller knows how long to sleep.
-- An id without a hash is dropped from the set.

local now_ms = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, ARGV[2])
local moved = 0
for _, job_id in ipairs(due) do
    local job_key = KEYS[5] .. job_id
    redis.call('ZREM', KEYS[1], job_id)
    local held = redis.call('HMGET', job_key, 'status', 'score')
    if held[1] ~= false then
        redis.call('HSET', job_key, 'status', 'queued')
        push_ready(KEYS[2], KEYS[3], job_id, held[2], false)
        moved = moved + 1
    end
end

if moved > 0 then
    redis.call('ZADD', KEYS[4], 0, 'ready')
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if head[2] then
    next_due = tonumber(head[2])
end
return {moved, next_due}
