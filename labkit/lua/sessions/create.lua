-- SessionStore.create_session
-- uses: sessions
-- KEYS[1]  the new session's Hash        KEYS[2]  the user's index ZSET
-- ARGV[1]  now in ms, or '' for the server clock
-- ARGV[2]  idle timeout (ms)             ARGV[3]  absolute timeout (ms)
-- ARGV[4]  token                         ARGV[5]  user id
-- ARGV[6..] field, json, field, json, ...
-- reply    1 created, 0 when the token is taken (never in practice; the caller retries)

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = clock_ms(ARGV[1])
local idle, absolute = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', KEYS[1], '_uid', ARGV[5], '_created', int(now), '_seen', int(now),
           unpack(ARGV, 6))
local ttl = math.min(idle, absolute)
redis.call('PEXPIRE', KEYS[1], int(ttl))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now))
redis.call('ZADD', KEYS[2], int(now + absolute), ARGV[4])
cover(KEYS[2], ttl, idle)
return 1
