-- claim_cron_slot.lua: claim due fire times of one cron entry and store their jobs.
--
-- A fire time's identity is (entry name, fire ms). The entry's watermark says up to
-- which ms its fire times are handled; a fire time at or below it is never stored
-- again, even after its job hash expired. Raising the watermark and storing the job
-- happen in this one script, so any number of schedulers store each fire time once.
--
-- KEYS[1]  {p:q}:cron          hash of cron entry state: name -> watermark ms,
--                              name:fired -> last fired ms, name:seen -> ms
-- KEYS[2]  {p:q}:ready         list of ready job ids at the default priority
-- KEYS[3]  {p:q}:prioritized   zset of ready job ids at other priorities (score field)
-- KEYS[4]  {p:q}:marker        zset that wakes one blocked worker per write
-- KEYS[5]  {p:q}:job:          prefix of the queue's job hashes (see enqueue_jobs.lua)
-- ARGV[1]  now_ms (int, epoch ms)
-- ARGV[2]  entry name (string, no ':')
-- ARGV[3]  until_ms (int, epoch ms): the caller considered every fire time up to it;
--          the watermark rises to it, whether or not those fire times fired
-- ARGV[4]  F, the number of hash fields per job (int)
-- ARGV[5 .. 4+F]  the field names (a subset of job.ENQUEUE_FIELDS, as in
--                 enqueue_jobs.lua); the first must be "id"
-- then, per fire time, oldest first, 1 + F values: fire ms, then the job's F field
--                 values in the order of the names
--
-- Returns a flat array: the watermark before the call (-1 when the entry was not
-- known: the watermark starts at until_ms and nothing is stored, so a new entry
-- never fires for times before it existed), then the ids of the jobs stored.
-- A stored watermark that is not a whole number counts as absent: the entry
-- starts again from until_ms. A job key that exists, of any type, is left alone.
--
-- Fails: a cron hash of the wrong type (only a hand write makes one) raises
-- WRONGTYPE on the first write, before anything changed. A job's list or
-- prioritized entry is written before its hash, so a ready list or prioritized
-- set of the wrong type raises it with the fire times before stored whole and
-- the watermark not yet raised: the next call stores the rest. A marker of the
-- wrong type raises it after everything else was written. Malformed ARGV raises a
-- Lua error in the same places.

local now_ms = tonumber(ARGV[1])
local name = ARGV[2]
local until_ms = tonumber(ARGV[3])
local n_fields = tonumber(ARGV[4])

redis.call('HSET', KEYS[1], name .. ':seen', now_ms)
local watermark = as_int(redis.call('HGET', KEYS[1], name))
if not watermark then
    redis.call('HSET', KEYS[1], name, until_ms)
    return {-1}
end

local score_at
for f = 1, n_fields do
    if ARGV[4 + f] == 'score' then score_at = f end
end

local out = {watermark}
local last_fired = false
local i = 5 + n_fields
while i <= #ARGV do
    local fire_ms = tonumber(ARGV[i])
    local job_id = ARGV[i + 1]
    local job_key = KEYS[5] .. job_id
    -- Above the watermark: no scheduler handled this fire time yet. A job hash
    -- with this id can only exist if someone enqueued the id by hand; keep it.
    if fire_ms > watermark and fire_ms <= until_ms
        and redis.call('EXISTS', job_key) == 0 then
        local fields = {}
        for f = 1, n_fields do
            fields[#fields + 1] = ARGV[4 + f]
            fields[#fields + 1] = ARGV[i + f]
        end
        fields[#fields + 1] = 'status'
        fields[#fields + 1] = 'queued'
        local score = score_at and ARGV[i + score_at] or ''
        push_ready(KEYS[2], KEYS[3], job_id, score, false)
        redis.call('HSET', job_key, unpack(fields))
        out[#out + 1] = job_id
        last_fired = fire_ms
    end
    i = i + 1 + n_fields
end

if until_ms > watermark then
    redis.call('HSET', KEYS[1], name, until_ms)
end
if last_fired then
    redis.call('HSET', KEYS[1], name .. ':fired', last_fired)
    redis.call('ZADD', KEYS[4], 0, 'ready')
end
return out
