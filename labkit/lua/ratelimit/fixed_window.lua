-- FixedWindow.hit / peek
-- uses: ratelimit_clock
-- KEYS[1]  hash {w = window number, n = units admitted in it}
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- reply    {allowed, remaining, retry_after_us, reset_after_us}

local now = clock()
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local win = math.floor(now / window)
local stored = redis.call('HMGET', KEYS[1], 'w', 'n')
local sw, count = tonumber(stored[1]), 0
if sw ~= nil and sw >= win then  -- same window (or a clock behind the newest window seen)
  win = sw
  count = tonumber(stored[2]) or 0
end
local reset = math.max(0, (win + 1) * window - now)
if count + cost > limit then
  return {0, limit - count, math.ceil(reset), math.ceil(reset)}
end
if consume then
  count = count + cost
  redis.call('HSET', KEYS[1], 'w', int(win), 'n', int(count))
  redis.call('PEXPIRE', KEYS[1], ttl(reset))
end
if count == 0 then reset = 0 end
return {1, limit - count, 0, math.ceil(reset)}
