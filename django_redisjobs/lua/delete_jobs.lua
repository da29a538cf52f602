-- delete_jobs.lua: delete ended jobs of one queue (succeeded, dead or cancelled).
--
-- KEYS[1]  {p:q}:succeeded     zset of succeeded job ids, score = finish ms
-- KEYS[2]  {p:q}:dead          zset of dead job ids, score = finish ms
-- KEYS[3]  {p:q}:cancelled     zset of cancelled job ids, score = finish ms
-- KEYS[4]  {p:q}:job:          prefix of the queue's job hashes; the script
--                              appends each id (same hash tag, same slot)
-- KEYS[5]  {p:q}:unique:       prefix of the queue's unique locks; only used for
--                              a job that has a unique_key
-- ARGV[1..] job ids
--
-- Returns one integer per id: 1 deleted (its hash, its id in the finished
-- zsets, and its unique lock while the lock still names it, which an ended job
-- keeps until the end of its unique_for window); 0 not deleted, because the job
-- has not ended; -1 no such hash, or its key holds another type: its id is still
-- removed from the finished zsets, where it could only be a leftover.
--
-- Fails: a zset key of the wrong type, which only a hand write makes, raises
-- WRONGTYPE before anything changes: they are checked first.

check_types(KEYS[1], 'zset', KEYS[2], 'zset', KEYS[3], 'zset')

local ended = {succeeded = true, dead = true, cancelled = true}
local results = {}

for i = 1, #ARGV do
    local job_id = ARGV[i]
    local job_key = KEYS[4] .. job_id
    local job = read_job('HMGET', job_key, 'status', 'unique_key')
    if job and job[1] ~= false and not ended[job[1]] then
        -- Waiting or running: deleting it would strand its id in a queue.
        results[#results + 1] = 0
    else
        for set = 1, 3 do
            redis.call('ZREM', KEYS[set], job_id)
        end
        if job and job[1] ~= false then
            if job[2] and job[2] ~= '' and redis.pcall('GET', KEYS[5] .. job[2]) == job_id then
                redis.call('DEL', KEYS[5] .. job[2])
            end
            redis.call('DEL', job_key)
            results[#results + 1] = 1
        else
            results[#results + 1] = -1
        end
    end
end
return results
