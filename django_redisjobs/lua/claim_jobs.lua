-- claim_jobs.lua: move up to LIMIT ready jobs of one queue to the active set, leased
-- to one worker, and return their fields.
--
-- KEYS[1]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[2]  {p:q}:prioritized   zset of ready job ids at other priorities
-- KEYS[3]  {p:q}:active        zset of claimed job ids, score = lease deadline ms
-- KEYS[4]  {p:q}:marker        zset that wakes blocked workers
-- KEYS[5]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- KEYS[6]  {p:q}:paused        string that exists while the queue is paused
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  lease_deadline_ms (int, epoch ms)
-- ARGV[3]  worker id (string)
-- ARGV[4]  limit (int >= 1): the most jobs to claim
-- ARGV[5]  priority bound (int): prioritized scores below it outrank the ready list
-- ARGV[6]  "1" when now_ms was read before a blocking wait in the same pipeline:
--          then a job's started_ms is at least its enqueued_ms and run_at_ms
--          (optional; absent means now_ms is the claim's time)
--
-- Returns a flat array; per claimed id: the id, N (the count of items that follow),
-- then N items alternating field name and value (the hash as the claim left it,
-- read with one HGETALL before the claim's HSET and patched in Lua). N = 0
-- means the id had no hash (expired or deleted); N = -1 means its key holds
-- another type, and one item follows, the reason. Either way the id is dropped
-- from the queue and nothing else changes for it. An id whose job is already
-- cancelled, or that the call already took (an id listed twice), is dropped and
-- left out of the reply: it must not run. Each id taken off counts towards the
-- limit, so the work stays bounded. The move is atomic: a claimed id is never in
-- neither the queue nor the active set.
--
-- A paused queue (KEYS[6] exists) gives an empty reply and nothing changes: its
-- jobs stay ready until it is resumed. Resuming sets the marker again, so a
-- worker whose blocking wait popped the marker meanwhile wakes at once.
--
-- Fails: a queue key (KEYS[1] to KEYS[3]) of the wrong type, which only a hand
-- write makes, raises WRONGTYPE before anything changes: they are read first. The
-- marker (KEYS[4]) is deleted before it is set again, so its type never matters.
-- Damaged job data never fails the call: a job key of another type is dropped as
-- above, an enqueued_ms or run_at_ms that is not a whole number counts as absent,
-- and an attempts count that is not one, or a field that is not UTF-8, is
-- reported in the job's `claim_fault` item (see lease below). Under maxmemory
-- the claim runs, as its first write is a DEL.

local now_ms = tonumber(ARGV[1])
local deadline_ms = ARGV[2]
local worker_id = ARGV[3]
local limit = tonumber(ARGV[4])
local bound = tonumber(ARGV[5])
local after_wait = ARGV[6] == '1'

-- A paused queue keeps its jobs; one EXISTS is all a claim pays for pausing.
if redis.call('EXISTS', KEYS[6]) == 1 then
    return {}
end

-- Reads of the queue's keys come first: each fails on a key of the wrong type
-- before anything changed. KEYS[3] is read only for that check.
local listed = redis.call('LLEN', KEYS[1])
local prioritized = redis.call('ZCARD', KEYS[2])
redis.call('ZCARD', KEYS[3])

-- How many ids to take from where: the prioritized ids scored below the bound
-- (priorities above the default) go first, then the head of the list, then the
-- other prioritized ids.
local top = {}
if prioritized > 0 then
    top = redis.call('ZRANGE', KEYS[2], 0, limit - 1, 'WITHSCORES')
end
local high = 0
while high * 2 < #top and tonumber(top[high * 2 + 2]) < bound do
    high = high + 1
end
local from_list = math.min(listed, limit - high)
local from_top = math.min(#top / 2, limit - from_list)

-- The first write: DEL works on a key of any type. Under maxmemory Redis refuses a
-- script's memory-growing writes only until its first write, so a claim (whose
-- pops free memory) still runs when Redis is full.
redis.call('DEL', KEYS[4])

local ids, taken_from_top = {}, {}
for i = 1, from_top do
    taken_from_top[i] = top[i * 2 - 1]
end
for i = 1, high do
    ids[#ids + 1] = taken_from_top[i]
end
if from_list > 0 then
    for _, job_id in ipairs(redis.call('LPOP', KEYS[1], from_list)) do
        ids[#ids + 1] = job_id
    end
end
for i = high + 1, from_top do
    ids[#ids + 1] = taken_from_top[i]
end

-- Fields the claim sets; the reply carries their new values, not the stored ones.
local claim_sets = {status = true, started_ms = true, worker = true, attempts = true}

-- The fields a claim writes to a job whose hash is `fields` (as `known`, by name),
-- and the reply's items for it: the stored fields with those written. A stored
-- value the job cannot run with, which only a hand write makes, is reported in
-- the reply's extra item `claim_fault` (what is wrong, a colon, the field's name);
-- the claim still counts the attempt, so the worker can record the job dead.
local function lease(fields, known)
    local attempts = as_int(known.attempts)
    local fault
    if not attempts and known.attempts and known.attempts ~= '' then
        fault = 'not a whole number below 2^53:attempts'
    end
    attempts = (attempts or 0) + 1
    local started_ms = now_ms
    if after_wait then
        -- The claim waited for the job: it started no earlier than the job
        -- existed, or fell due.
        started_ms = math.max(now_ms, as_int(known.enqueued_ms) or 0,
            as_int(known.run_at_ms) or 0)
    end
    local set = {'status', 'active', 'started_ms', string.format('%.0f', started_ms),
        'worker', worker_id, 'attempts', string.format('%.0f', attempts)}
    local reply = {}
    -- One search of the whole hash: only a hash with a byte above 127 somewhere
    -- has its fields checked one by one.
    local ascii = not string.find(table.concat(fields), '[\128-\255]')
    for f = 1, #fields, 2 do
        local name, value = fields[f], fields[f + 1]
        if not claim_sets[name] then
            if ascii or (is_utf8(name) and is_utf8(value)) then
                reply[#reply + 1] = name
                reply[#reply + 1] = value
            elseif not fault then
                -- Clients decode replies as UTF-8: the bytes stay out of it.
                if is_utf8(name) then
                    fault = 'not UTF-8 text:' .. name
                else
                    fault = 'a field name that is not UTF-8 text:?'
                end
            end
        end
    end
    for f = 1, #set do
        reply[#reply + 1] = set[f]
    end
    if fault then
        reply[#reply + 1] = 'claim_fault'
        reply[#reply + 1] = fault
    end
    return set, reply
end

local out, leases, writes, seen = {}, {}, {}, {}
for _, job_id in ipairs(ids) do
    local job_key = KEYS[5] .. job_id
    -- One read gives existence, status and the times, and the reply's fields.
    local fields, reason
    if not seen[job_id] then
        fields, reason = read_job('HGETALL', job_key)
    end
    local known = {}
    for f = 1, #(fields or {}), 2 do
        known[fields[f]] = fields[f + 1]
    end
    if seen[job_id] then
        -- Listed twice (only by hand): its first copy is the claim.
    elseif not fields then
        out[#out + 1] = job_id
        out[#out + 1] = -1
        out[#out + 1] = reason
    elseif #fields == 0 then
        -- The hash expired or was deleted; the id alone cannot run.
        out[#out + 1] = job_id
        out[#out + 1] = 0
    elseif known.status == 'cancelled' then
        -- cancel_job.lua takes ids out of the queue, so only an id put back by
        -- hand or by an older version gets here; the cancel stands.
    else
        local set, reply = lease(fields, known)
        leases[#leases + 1] = deadline_ms
        leases[#leases + 1] = job_id
        writes[#writes + 1] = {job_key, set}
        out[#out + 1] = job_id
        out[#out + 1] = #reply
        for f = 1, #reply do
            out[#out + 1] = reply[f]
        end
    end
    seen[job_id] = true
end

-- The type checks above keep these writes from failing part-way.
if listed + prioritized > from_list + from_top then
    -- Jobs remain: the marker wakes the next blocked worker too. (Drained, an
    -- idle worker should block, not wake to an empty queue.)
    redis.call('ZADD', KEYS[4], 0, 'ready')
end
if #leases > 0 then
    redis.call('ZADD', KEYS[3], unpack(leases))
end
if from_top > 0 then
    redis.call('ZREM', KEYS[2], unpack(taken_from_top))
end
for _, write in ipairs(writes) do
    redis.call('HSET', write[1], unpack(write[2]))
end
return out
