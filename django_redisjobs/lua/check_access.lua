-- check_access.lua: try, as the connected ACL user, every command the app sends
-- from scripts and plain calls, on probe keys of its own, and report the ones
-- the user may not run; then delete the probe keys.
--
-- KEYS[1]  {p:access}:string   probe key (string)
-- KEYS[2]  {p:access}:hash     probe key (hash)
-- KEYS[3]  {p:access}:list     probe key (list)
-- KEYS[4]  {p:access}:zset     probe key (sorted set)
-- KEYS[5]  {p:access}:set      probe key (set)
-- ARGV[1]  a channel under the app's prefix, for PUBLISH
-- ARGV[2]  now_ms (int, epoch ms), for PEXPIREAT
--
-- Returns a flat array: per refused command, its name and Redis's reason. Empty
-- when every command ran. A command refused for another reason than the ACL
-- (none should be, on keys of the right types) is reported as well: the caller
-- cannot tell the difference, and either way the app could not work.
--
-- Fails: never on the probe keys' content (every call is a pcall and the keys
-- are deleted first and last). BZPOPMIN, SUBSCRIBE and CONFIG cannot run in a
-- script; the caller probes them itself.

local s, h, l, z, set = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local refused = {}

local function try(name, ...)
    local reply = redis.pcall(name, ...)
    if type(reply) == 'table' and reply.err then
        refused[#refused + 1] = name
        refused[#refused + 1] = reply.err
    end
end

try('DEL', s, h, l, z, set)
try('SET', s, 'x')
try('GET', s)
try('EXISTS', s)
try('TYPE', s)
try('PEXPIRE', s, 60000)
try('PEXPIREAT', s, tonumber(ARGV[2]) + 60000)
try('PEXPIRETIME', s)
try('PTTL', s)
try('PERSIST', s)
try('HSET', h, 'f', 'v')
try('HGET', h, 'f')
try('HMGET', h, 'f')
try('HGETALL', h)
try('HKEYS', h)
try('HINCRBY', h, 'n', 1)
try('HDEL', h, 'f')
try('RPUSH', l, 'x')
try('LPUSH', l, 'x')
try('LLEN', l)
try('LRANGE', l, 0, 0)
try('LREM', l, 1, 'x')
try('LPOP', l, 1)
try('ZADD', z, 0, 'x')
try('ZCARD', z)
try('ZCOUNT', z, '-inf', '+inf')
try('ZSCORE', z, 'x')
try('ZRANGE', z, 0, 0)
try('ZRANGEBYSCORE', z, '-inf', '+inf', 'LIMIT', 0, 1)
try('ZREMRANGEBYSCORE', z, '-inf', '(0')
try('ZREM', z, 'x')
try('ZADD', z, 0, 'y')
try('ZPOPMIN', z, 1)
try('SADD', set, 'x')
try('SMEMBERS', set)
try('SREM', set, 'x')
try('PUBLISH', ARGV[1], 'access check')
redis.pcall('DEL', s, h, l, z, set)
return refused
