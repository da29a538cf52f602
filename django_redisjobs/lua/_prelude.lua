-- _prelude.lua: helpers shared by the scripts in this directory; not a script.
--
-- scripts.py puts this text in front of every script's text when it loads it, so
-- each helper is written once, and each script's text (so its SHA) is the same in
-- every process. Redis reports errors at lines of the joined text: scripts.py
-- names the script file and its own line in the error it raises. A script's own
-- text starts at its header line "-- <name>.lua: ...".
--
-- Helpers take every key they touch as a parameter and read no KEYS or ARGV. They
-- never fail on damaged data (a stored field that is not a number, a job key of the
-- wrong type): stored values go through as_int, keys of unknown type through
-- redis.pcall.

-- The integer a stored value holds, or nil when it is absent, not a whole number,
-- or beyond +-2^53. Lua's tonumber accepts "nan" and "inf"; Redis rejects NaN as
-- a score, and turns a non-finite or huge number into a wrong integer reply.
local function as_int(value)
    local n = tonumber(value)
    if n and n == math.floor(n) and n > -9007199254740992
        and n < 9007199254740992 then
        return n
    end
    return nil
end

-- Read a job's hash with `command` (HMGET or HGETALL) and `...`. Returns the
-- reply, or nil and a reason when the key holds another type: a key a script
-- cannot use, which it sets aside instead of failing part-way.
local function read_job(command, job_key, ...)
    local reply = redis.pcall(command, job_key, ...)
    if reply.err then
        local kind = redis.call('TYPE', job_key).ok
        return nil, 'its key holds a ' .. kind .. ', not a hash'
    end
    return reply
end

-- Fail, before the caller changes anything, unless each key is missing or of its
-- type: `...` alternates key and type ('list', 'zset', 'hash').
local function check_types(...)
    local given = {...}
    for i = 1, #given, 2 do
        local kind = redis.call('TYPE', given[i]).ok
        if kind ~= 'none' and kind ~= given[i + 1] then
            error({err = 'WRONGTYPE ' .. given[i] .. ' holds a ' .. kind
                .. ', not a ' .. given[i + 1]})
        end
    end
end

-- Make a job ready: into the prioritized zset when its stored `score` is a whole
-- number (a non-default priority orders by score, not by arrival), else into the
-- ready list, at the head when `at_front`. An empty or corrupt score means the
-- default priority.
local function push_ready(ready_key, prioritized_key, job_id, score, at_front)
    local n = as_int(score)
    if n then
        redis.call('ZADD', prioritized_key, n, job_id)
    elseif at_front then
        redis.call('LPUSH', ready_key, job_id)
    else
        redis.call('RPUSH', ready_key, job_id)
    end
end

-- Take a ready job out of where push_ready put it, by the same rule. LREM is O(N)
-- in the list's length.
local function pull_ready(ready_key, prioritized_key, job_id, score)
    if as_int(score) then
        redis.call('ZREM', prioritized_key, job_id)
    else
        redis.call('LREM', ready_key, 1, job_id)
    end
end

-- Release the unique lock `lock_prefix .. unique_key` of a job that has ended, if
-- the job still holds it. While the job's unique_for window (`until_ms`) is open,
-- the lock lives on until the window closes, and so does the job's hash, so the
-- lock never names a missing job. A lock taken over by a newer job, or of the
-- wrong type, is not this job's: it stays.
local function release_unique(lock_prefix, unique_key, job_key, job_id, until_ms,
                              now_ms)
    if not unique_key or unique_key == '' then
        return
    end
    local lock = lock_prefix .. unique_key
    if redis.pcall('GET', lock) ~= job_id then
        return
    end
    local window_end = as_int(until_ms) or 0
    if window_end > now_ms then
        redis.call('PEXPIREAT', lock, window_end)
        if redis.call('PEXPIRETIME', job_key) < window_end then
            redis.call('PEXPIREAT', job_key, window_end)
        end
    else
        redis.call('DEL', lock)
    end
end

-- The most attempts a job's `history` field keeps, oldest dropped first. Keep in
-- step with job.ATTEMPT_HISTORY_LIMIT.
local HISTORY_LIMIT = 25

-- `s` cut to at most `n` bytes, never inside a UTF-8 sequence: a cut character
-- would make the whole field invalid UTF-8, which clients cannot decode.
local function cut_text(s, n)
    if #s <= n then
        return s
    end
    local i = n
    while i > 0 and string.byte(s, i) >= 0x80 and string.byte(s, i) < 0xC0 do
        i = i - 1
    end
    if i > 0 then
        local lead = string.byte(s, i)
        local size = 1
        if lead >= 0xF0 then size = 4 elseif lead >= 0xE0 then size = 3
        elseif lead >= 0xC0 then size = 2 end
        if i + size - 1 > n then
            n = i - 1
        end
    end
    return string.sub(s, 1, n)
end

-- The job's `history` field with one more attempt appended: a JSON array of
-- objects, n (attempt number), w (worker id), s and f (start and end ms), o (how
-- it ended: succeeded, retrying, dead, cancelled or lost), e and m (error class
-- and a message cut to 200 bytes). The usual cases cost no JSON decode: a job's
-- first ending writes a one-entry array, and later ones append to an array this
-- function wrote while it has room (its entries are counted by their `{"n":`,
-- which an encoded string cannot hold). A full array, or a stored value that is
-- not one of ours (a hand edit), is decoded, trimmed to the newest entries and
-- encoded again; one that is not an array at all starts afresh: history is for
-- people and never stops a job from ending.
local function add_attempt(history, number, worker, started_ms, finished_ms,
                           outcome, error_class, message)
    local entry = string.format(
        '{"n":%.0f,"w":%s,"s":%.0f,"f":%.0f,"o":"%s","e":%s,"m":%s}',
        as_int(number) or 0, cjson.encode(worker or ''), as_int(started_ms) or 0,
        finished_ms, outcome, cjson.encode(error_class or ''),
        cjson.encode(cut_text(message or '', 200)))
    if not history or history == '' or history == '[]' then
        return '[' .. entry .. ']'
    end
    if string.sub(history, 1, 6) == '[{"n":' and string.sub(history, -1) == ']' then
        local _, count = string.gsub(history, '{"n":', '')
        if count < HISTORY_LIMIT then
            return string.sub(history, 1, -2) .. ',' .. entry .. ']'
        end
    end
    local ok, list = pcall(cjson.decode, history)
    if not ok or type(list) ~= 'table' or (next(list) ~= nil and list[1] == nil) then
        list = {}
    end
    list[#list + 1] = cjson.decode(entry)
    while #list > HISTORY_LIMIT do
        table.remove(list, 1)
    end
    return cjson.encode(list)
end

-- Whether `s` is valid UTF-8 as Python's strict codec reads it (no overlong
-- forms, no surrogates, nothing above U+10FFFF). Clients decode replies as UTF-8,
-- so one invalid byte in a reply fails the whole reply; a script that returns
-- stored text checks it first. ASCII text, the common case, costs one find.
local function is_utf8(s)
    if not string.find(s, '[\128-\255]') then
        return true
    end
    local i, n = 1, #s
    while i <= n do
        local c = string.byte(s, i)
        local size, low, high = 1, 0x80, 0xBF
        if c < 0x80 then
            size = 1
        elseif c >= 0xC2 and c <= 0xDF then
            size = 2
        elseif c >= 0xE0 and c <= 0xEF then
            size = 3
            if c == 0xE0 then low = 0xA0 elseif c == 0xED then high = 0x9F end
        elseif c >= 0xF0 and c <= 0xF4 then
            size = 4
            if c == 0xF0 then low = 0x90 elseif c == 0xF4 then high = 0x8F end
        else
            return false
        end
        for k = 1, size - 1 do
            local b = string.byte(s, i + k)
            if not b or b < (k == 1 and low or 0x80) or b > (k == 1 and high or 0xBF) then
                return false
            end
        end
        i = i + size
    end
    return true
end
