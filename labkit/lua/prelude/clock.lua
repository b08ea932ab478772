-- Prelude: the server clock, shared by every script that reads time.
-- now_us(): microseconds since the epoch from the server's TIME; now_ms(): milliseconds.
-- Redis 3.2-6.x must switch a script to effects replication before a write follows TIME.
-- Redis 7+ and Valkey always replicate effects (redis.replicate_commands is a no-op there);
-- they are the servers that define redis.REDIS_VERSION_NUM, so only older servers make
-- the call (saving a Lua call on every script run on 7+).
-- int(x): a number as an integer string, exact for integers below 2^53 (tostring would
-- print 1e+15 for large values, which PEXPIRE and friends refuse).

local function now_us()
  if not redis.REDIS_VERSION_NUM and redis.replicate_commands then
    pcall(redis.replicate_commands)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function now_ms()
  return math.floor(now_us() / 1000)
end

local function int(x)
  return string.format('%.0f', x)
end
