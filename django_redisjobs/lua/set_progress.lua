-- set_progress.lua: store a running job's progress, only while its attempt holds
-- the lease, and announce it on the job's channel.
--
-- KEYS[1]  {p:q}:job:<id>      the job's hash
-- ARGV[1]  worker id (string): the worker running the attempt
-- ARGV[2]  attempt (int): the attempts value the attempt was claimed with
-- ARGV[3]  fraction (number, 0 to 1)
-- ARGV[4]  message (string, may be empty)
-- ARGV[5]  channel (string): the job's channel, told "progress"
--
-- Returns 1 when stored; 0 when the hash is gone (the job expired or was
-- deleted: it is never created again), is not `active`, belongs to another
-- worker or attempt (its lease was recovered), or its key holds another type.
--
-- Fails: never on stored data; only an outage or a refused write (maxmemory,
-- a replica) fails the call.

local job = read_job('HMGET', KEYS[1], 'status', 'worker', 'attempts')
if not job or job[1] ~= 'active' or job[2] ~= ARGV[1] or job[3] ~= ARGV[2] then
    return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'progress_message', ARGV[4])
redis.call('PUBLISH', ARGV[5], 'progress')
return 1
