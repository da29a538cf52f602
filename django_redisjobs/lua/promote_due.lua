-- promote_due.lua: move scheduled jobs whose time has come to the ready structures.
--
-- KEYS[1]  {p:q}:scheduled     zset of job ids, score = due ms
-- KEYS[2]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[3]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[4]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[5]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- KEYS[6]  {p:q}:retrying      zset indexing the retrying ids of KEYS[1]: every id
--                              leaving KEYS[1] leaves it too (redis.pcall: a
--                              damaged index never fails the call)
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  limit (int >= 1): the most jobs to move in this call
--
-- Returns a flat array: moved, next_due_ms, then a pair per id set aside (the id
-- and the reason). moved is how many jobs became ready; next_due_ms is the due ms
-- of the earliest job still scheduled, so the caller knows how long to sleep: -1
-- when none is, or when the earliest score is not a time (+inf, only by hand: it
-- never falls due), and now_ms when it is -inf (due at once, left by the limit).
-- Every due id leaves the scheduled set: an id without a hash is dropped, and an
-- id whose key holds another type is set aside (the key stays for a person to look
-- at). A job's score field that is not a whole number sends it to the ready list,
-- as the default priority does.
--
-- Fails: a queue key (KEYS[1] to KEYS[4]) of the wrong type, which only a hand
-- write makes, raises WRONGTYPE before anything changes: every read and type check
-- comes before the first write. Damaged job data never fails the call.

local now_ms = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, ARGV[2])
local ready, out = {}, {0, -1}
for _, job_id in ipairs(due) do
    local held, reason = read_job('HMGET', KEYS[5] .. job_id, 'status', 'score')
    if not held then
        out[#out + 1] = job_id
        out[#out + 1] = reason
    elseif held[1] then
        ready[#ready + 1] = {job_id, held[2]}
    end
end

if #due > 0 then
    check_types(KEYS[2], 'list', KEYS[3], 'zset', KEYS[4], 'zset')
    redis.call('ZREM', KEYS[1], unpack(due))
    redis.pcall('ZREM', KEYS[6], unpack(due))
    for _, job in ipairs(ready) do
        redis.call('HSET', KEYS[5] .. job[1], 'status', 'queued')
        push_ready(KEYS[2], KEYS[3], job[1], job[2], false)
    end
end
if #ready > 0 then
    redis.call('ZADD', KEYS[4], 0, 'ready')
end
out[1] = #ready

local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if head[2] then
    local due_ms = as_int(head[2])
    if due_ms then
        out[2] = due_ms
    elseif tonumber(head[2]) < 0 then
        out[2] = now_ms
    end
end
return out
