-- SessionStore.rotate_session
-- uses: sessions
-- KEYS[1]  old session Hash              KEYS[2]  new session Hash (same bucket, same slot)
-- ARGV[1]  now in ms, or '' for the server clock
-- ARGV[2]  idle timeout (ms)             ARGV[3]  absolute timeout (ms)
-- ARGV[4]  index key prefix (KEYS[1]'s hash tag)
-- ARGV[5]  old token                     ARGV[6]  new token
-- ARGV[7..] field, json, field, json, ...
-- reply    1 rotated, 0 old session missing or over, -1 new token taken (caller retries)

local ttl = touch(KEYS[1], clock_ms(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                  ARGV[4], ARGV[5])
if not ttl then return 0 end
if redis.call('RENAMENX', KEYS[1], KEYS[2]) == 0 then return -1 end
if #ARGV >= 7 then redis.call('HSET', KEYS[2], unpack(ARGV, 7)) end
local index = ARGV[4] .. redis.call('HGET', KEYS[2], '_uid')
local deadline = redis.call('ZSCORE', index, ARGV[5])
redis.call('ZREM', index, ARGV[5])
if not deadline then
  deadline = int(tonumber(redis.call('HGET', KEYS[2], '_created')) + tonumber(ARGV[3]))
end
redis.call('ZADD', index, deadline, ARGV[6])  -- may have recreated the index, with no TTL
cover(index, ttl, tonumber(ARGV[2]))
return 1
