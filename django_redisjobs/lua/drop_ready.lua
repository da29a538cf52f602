-- drop_ready.lua: delete up to LIMIT ready jobs of one queue, from the head.
--
-- KEYS[1]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[2]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[3]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[4]  {p:q}:job:          prefix of the queue's job hashes; the script
--                              appends each id (same hash tag, same slot)
-- KEYS[5]  {p:q}:unique:       prefix of the queue's unique locks; only used for
--                              a job that has a unique_key
-- ARGV[1]  limit (int >= 1): the most ids to take off
--
-- Takes ids off the head of the ready list, then the lowest scores of the
-- prioritized zset, up to LIMIT in all, and deletes each one's hash when it is
-- still `queued` (a hash in any other state is left alone: only a hand write
-- puts such an id there), with its unique lock while the lock names it. When
-- both are empty the marker is deleted, so no worker wakes for nothing.
--
-- Returns an array: the number of ids taken off, then the number of hashes
-- deleted. Call again until the first is below LIMIT.
--
-- Fails: a queue key of the wrong type, which only a hand write makes, raises
-- WRONGTYPE before anything changes: they are read first.

local limit = tonumber(ARGV[1])
local listed = redis.call('LLEN', KEYS[1])
local prioritized = redis.call('ZCARD', KEYS[2])

local ids = {}
if listed > 0 then
    ids = redis.call('LPOP', KEYS[1], math.min(listed, limit))
end
local rest = limit - #ids
if rest > 0 and prioritized > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[2], rest)
    for p = 1, #popped, 2 do
        ids[#ids + 1] = popped[p]
    end
end

local deleted = 0
for _, job_id in ipairs(ids) do
    local job_key = KEYS[4] .. job_id
    local job = read_job('HMGET', job_key, 'status', 'unique_key')
    if job and job[1] == 'queued' then
        if job[2] and job[2] ~= '' and redis.pcall('GET', KEYS[5] .. job[2]) == job_id then
            redis.call('DEL', KEYS[5] .. job[2])
        end
        redis.call('DEL', job_key)
        deleted = deleted + 1
    end
end

if listed + prioritized <= #ids then
    redis.call('DEL', KEYS[3])
end
return {#ids, deleted}
