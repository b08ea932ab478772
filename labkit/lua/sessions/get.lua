-- SessionStore.get_session
-- uses: sessions
-- KEYS[1]  session Hash
-- ARGV[1]  now in ms, or '' for the server clock
-- ARGV[2]  idle timeout (ms)             ARGV[3]  absolute timeout (ms)
-- ARGV[4]  index key prefix (KEYS[1]'s hash tag)    ARGV[5]  token
-- reply    {ttl ms, ms left before the absolute deadline, HGETALL} or nil when the
--          session is missing or over

local ttl, left = touch(KEYS[1], clock_ms(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                        ARGV[4], ARGV[5])
if not ttl then return nil end
return {ttl, left, redis.call('HGETALL', KEYS[1])}
