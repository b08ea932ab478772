-- Prelude: the server clock, shared by every script that reads time.
-- now_us(): microseconds since the epoch from the server's TIME; now_ms(): milliseconds.
-- Redis 3.2-6.x must switch a script to effects replication before a write follows TIME;
-- Redis 7+ and Valkey replicate effects already (and may drop the call), hence the guard.
-- int(x): a number as an integer string, exact for integers below 2^53 (tostring would
-- print 1e+15 for large values, which PEXPIRE and friends refuse).

local function now_us()
  if redis.replicate_commands then pcall(redis.replicate_commands) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function now_ms()
  return math.floor(now_us() / 1000)
end

local function int(x)
  return string.format('%.0f', x)
end
