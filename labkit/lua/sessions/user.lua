-- SessionStore.list_user_sessions / destroy_user_sessions
-- uses: sessions
-- KEYS[1]  the user's index ZSET
-- ARGV[1]  now in ms, or '' for the server clock
-- ARGV[2]  session key prefix P{b}:s: (KEYS[1]'s hash tag, so KEYS[1]'s slot)
-- ARGV[3]  '1' to destroy every session, '0' to list the live ones
-- ARGV[4]  idle timeout (ms)
-- reply    the live tokens, oldest first (list), or how many live sessions were destroyed

local now, idle = clock_ms(ARGV[1]), tonumber(ARGV[4])
for _, token in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now))) do
  redis.call('DEL', ARGV[2] .. token)  -- past its absolute deadline
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
local live = {}
for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[2] .. token, '_created', '_seen')
  local seen = tonumber(f[2])
  if f[1] and not (seen and now - seen > idle) then
    live[#live + 1] = token
  else  -- gone (its TTL ran out), or idle by the clock
    redis.call('DEL', ARGV[2] .. token)
    redis.call('ZREM', KEYS[1], token)
  end
end
if ARGV[3] == '1' then
  for _, token in ipairs(live) do redis.call('DEL', ARGV[2] .. token) end
  redis.call('DEL', KEYS[1])
  return #live
end
return live
