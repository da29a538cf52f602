-- forget_cron_entries.lua: delete the state of cron entries no scheduler knows.
--
-- Every scheduler refreshes name:seen for the entries it knows; a caller passes the
-- names it does not know. Checking name:seen here, in the same atomic step as the
-- delete, keeps the state of an entry another scheduler still refreshes (during a
-- rolling deploy, or in a worker whose code registers more entries).
--
-- KEYS[1]  {p:q}:cron          hash of cron entry state (see claim_cron_slot.lua)
-- ARGV[1]  cutoff_ms (int, epoch ms): forget an entry not seen since before it
-- ARGV[2 ..]  entry names (strings, no ':')
--
-- Returns the number of entries forgotten.
--
-- Fails: a cron hash of the wrong type (only a hand write makes one) raises
-- WRONGTYPE on the first read, before anything changed. A seen field that is not
-- a whole number (even "nan") counts as never seen. Never fails otherwise on
-- well-formed ARGV.

local cutoff_ms = tonumber(ARGV[1])
local forgotten = 0
for i = 2, #ARGV do
    local name = ARGV[i]
    -- A missing or corrupt seen field counts as never seen: nothing refreshes it.
    local seen = as_int(redis.call('HGET', KEYS[1], name .. ':seen')) or 0
    if seen < cutoff_ms then
        redis.call('HDEL', KEYS[1], name, name .. ':fired', name .. ':seen')
        forgotten = forgotten + 1
    end
end
return forgotten
