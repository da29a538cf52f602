-- enqueue_jobs.lua: store new jobs of one queue and make each ready or scheduled.
--
-- KEYS[1]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[2]  {p:q}:prioritized   zset of ready job ids at other priorities (score field)
-- KEYS[3]  {p:q}:scheduled     zset of job ids waiting for run_at_ms
-- KEYS[4]  {p:q}:marker        zset that wakes one blocked worker per write
-- KEYS[5]  {p:q}:job:          prefix of the queue's job hashes; a job's key is this
--                              prefix plus its id. It carries the queue's hash tag, so
--                              every key built from it lies in the slot of KEYS[1].
-- KEYS[6]  {p:q}:unique:       prefix of the queue's unique locks; a lock's key is
--                              this prefix plus the job's unique_key field, and its
--                              value is the id of the job holding it. Only read for
--                              a job with a non-empty unique_key (same slot rule).
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  F, the number of hash fields per job (int)
-- ARGV[3 .. 2+F]  the field names (a subset of job.ENQUEUE_FIELDS); the first must
--                 be "id". A field left out holds its default for every reader:
--                 "score" "" (default priority, the ready list), "run_at_ms" 0
--                 (ready now), "unique_key" "" (not unique), and so on
-- then, per job, 1 + F values: at_front ("1" pushes to the head of the ready list),
--                 then the F field values in the order of the names
--
-- Returns a flat array with one item per job: the integer 1 stored and ready, 2
-- stored and scheduled (its run_at_ms is later than now_ms: this call, with the
-- caller's clock at the write, decides, not the clock at the job's creation), 0
-- an id that already exists (a replayed enqueue; the stored job is left as it is),
-- or a string, the id of the job that holds the job's unique_key (nothing stored).
-- A unique lock is held while its job is queued, scheduled, active or retrying,
-- and after that until the lock's own expiry (set when the job ends, for the rest
-- of its unique_until_ms window). A lock whose job is gone or ended without such an
-- expiry is stale, and the new job takes it over. A job key of another type counts
-- as a known id (0; it is left as it is). A unique lock of another type counts as
-- free (SET replaces it), and a holder whose key is not a hash as ended.
--
-- Fails: each job is stored whole or not at all. Its queue structure is written
-- before its hash, so a ready list, prioritized or scheduled set of the wrong type
-- (only a hand write makes one) raises WRONGTYPE with the jobs before it stored
-- whole and it and the jobs after it not stored; a marker of the wrong type raises
-- it after every job was stored. Either way a retry of the same call completes
-- it: a stored id answers 0. Malformed ARGV raises a Lua error the same way.

local now_ms = tonumber(ARGV[1])
local n_fields = tonumber(ARGV[2])
local names = {}
local score_at, run_at_at, unique_at
for f = 1, n_fields do
    names[f] = ARGV[2 + f]
    if names[f] == 'score' then score_at = f end
    if names[f] == 'run_at_ms' then run_at_at = f end
    if names[f] == 'unique_key' then unique_at = f end
end

local live = {queued = true, scheduled = true, active = true, retrying = true}

-- The id of the job that holds `lock`, or nil when the lock is free or stale.
local function holder_of(lock)
    local holder = redis.pcall('GET', lock)
    if type(holder) ~= 'string' then
        -- Free, or damaged (a key of another type): no job holds it.
        return nil
    end
    local status = redis.pcall('HGET', KEYS[5] .. holder, 'status')
    if type(status) == 'string' and live[status] then
        return holder
    end
    -- An ended holder keeps the key only while the lock carries its window's TTL.
    if redis.call('PTTL', lock) > 0 then
        return holder
    end
    return nil
end

-- Store one job and make it ready or scheduled; `i` is its at_front position.
local function store(i, job_id, job_key, unique_key)
    local fields = {}
    for f = 1, n_fields do
        fields[#fields + 1] = names[f]
        fields[#fields + 1] = ARGV[i + f]
    end
    local run_at_ms = run_at_at and as_int(ARGV[i + run_at_at]) or 0
    local score = score_at and ARGV[i + score_at] or ''
    local status = 'queued'
    -- The structure first: a key of the wrong type fails here, before the hash.
    if run_at_ms > now_ms then
        -- Not ready yet: promote_due.lua moves it when run_at_ms passes.
        status = 'scheduled'
        redis.call('ZADD', KEYS[3], run_at_ms, job_id)
    else
        push_ready(KEYS[1], KEYS[2], job_id, score, ARGV[i] == '1')
    end
    -- No 'attempts' field: absent means 0 (claim_jobs.lua sets it).
    fields[#fields + 1] = 'status'
    fields[#fields + 1] = status
    redis.call('HSET', job_key, unpack(fields))
    if unique_key ~= '' then
        -- No TTL while the job lives: its end releases the lock (finish_jobs.lua).
        -- SET replaces a key of any type.
        redis.call('SET', KEYS[6] .. unique_key, job_id)
    end
    return status == 'queued'
end

local results = {}
local wake = false
local i = 3 + n_fields
while i <= #ARGV do
    local job_id = ARGV[i + 1]
    local job_key = KEYS[5] .. job_id
    local unique_key = ''
    if unique_at then
        unique_key = ARGV[i + unique_at]
    end
    local holder = nil
    if redis.call('EXISTS', job_key) == 1 then
        -- A known id means the same enqueue arrived twice; the first one wins.
        results[#results + 1] = 0
    else
        if unique_key ~= '' then
            holder = holder_of(KEYS[6] .. unique_key)
        end
        if holder then
            -- Another job holds the key: the caller gets that job instead.
            results[#results + 1] = holder
        else
            if store(i, job_id, job_key, unique_key) then
                wake = true
                results[#results + 1] = 1
            else
                results[#results + 1] = 2
            end
        end
    end
    i = i + 1 + n_fields
end

if wake then
    -- One member, whatever the count: an idle worker's BZPOPMIN wakes on it.
    redis.call('ZADD', KEYS[4], 0, 'ready')
end
return results
