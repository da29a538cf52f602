-- enqueue_jobs.lua: store new jobs of one queue and make each ready or scheduled.
--
-- KEYS[1]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[2]  {p:q}:prioritized   zset of ready job ids at other priorities (score field)
-- KEYS[3]  {p:q}:scheduled     zset of job ids waiting for run_at_ms
-- KEYS[4]  {p:q}:marker        zset that wakes one blocked worker per write
-- KEYS[5]  {p:q}:job:          prefix of the queue's job hashes; a job's key is this
--                              prefix plus its id. It carries the queue's hash tag, so
--                              every key built from it lies in the slot of KEYS[1].
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  F, the number of hash fields per job (int)
-- ARGV[3 .. 2+F]  the field names (job.ENQUEUE_FIELDS); the first must be "id" and
--                 "score" and "run_at_ms" must be among them
-- then, per job, 1 + F values: at_front ("1" pushes to the head of the ready list),
--                 then the F field values in the order of the names
--
-- Returns a flat array with one integer per job: 1 stored, 0 an id that already
-- exists (a replayed enqueue; the stored job is left as it is).
-- Fails only on malformed ARGV (a Lua error, nothing partial for that job).

local now_ms = tonumber(ARGV[1])
local n_fields = tonumber(ARGV[2])
local names = {}
local score_at, run_at_at
for f = 1, n_fields do
    names[f] = ARGV[2 + f]
    if names[f] == 'score' then score_at = f end
    if names[f] == 'run_at_ms' then run_at_at = f end
end

local results = {}
local wake = false
local i = 3 + n_fields
while i <= #ARGV do
    local at_front = ARGV[i]
    local job_id = ARGV[i + 1]
    local job_key = KEYS[5] .. job_id
    if redis.call('EXISTS', job_key) == 1 then
        -- A known id means the same enqueue arrived twice; the first one wins.
        results[#results + 1] = 0
    else
        local fields = {}
        for f = 1, n_fields do
            fields[#fields + 1] = names[f]
            fields[#fields + 1] = ARGV[i + f]
        end
        local run_at_ms = tonumber(ARGV[i + run_at_at]) or 0
        local score = ARGV[i + score_at]
        local status = 'queued'
        if run_at_ms > now_ms then
            status = 'scheduled'
        end
        fields[#fields + 1] = 'status'
        fields[#fields + 1] = status
        fields[#fields + 1] = 'attempts'
        fields[#fields + 1] = '0'
        redis.call('HSET', job_key, unpack(fields))
        if status == 'scheduled' then
            -- Not ready yet: promote_due.lua moves it when run_at_ms passes.
            redis.call('ZADD', KEYS[3], run_at_ms, job_id)
        elseif score ~= '' then
            -- A non-default priority needs ordering by score, not by arrival.
            redis.call('ZADD', KEYS[2], score, job_id)
            wake = true
        elseif at_front == '1' then
            redis.call('LPUSH', KEYS[1], job_id)
            wake = true
        else
            redis.call('RPUSH', KEYS[1], job_id)
            wake = true
        end
        results[#results + 1] = 1
    end
    i = i + 1 + n_fields
end

if wake then
    -- One member, whatever the count: an idle worker's BZPOPMIN wakes on it.
    redis.call('ZADD', KEYS[4], 0, 'ready')
end
return results
