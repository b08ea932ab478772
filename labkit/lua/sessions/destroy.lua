-- SessionStore.destroy_session
-- uses: sessions
-- KEYS[1]  session Hash
-- ARGV[1]  now in ms, or '' for the server clock
-- ARGV[2]  idle timeout (ms)             ARGV[3]  absolute timeout (ms)
-- ARGV[4]  index key prefix (KEYS[1]'s hash tag)    ARGV[5]  token
-- reply    1 when the session was live (and was deleted), else 0 (one over by the clock
--          is deleted too)

local left, uid = lookup(KEYS[1], clock_ms(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                         ARGV[4], ARGV[5])
if not left then return 0 end
redis.call('DEL', KEYS[1])
if uid then redis.call('ZREM', ARGV[4] .. uid, ARGV[5]) end
return 1
