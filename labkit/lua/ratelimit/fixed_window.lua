-- FixedWindow.hit / peek
-- uses: ratelimit_clock
-- KEYS[1]  string '<window number>:<units admitted in it>'
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- reply    {allowed, remaining, retry_after_us, reset_after_us}
--
-- One string, read with GET and written with one SET ... PX: a denial reads one value and
-- writes nothing.

local now = clock()
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local win, count = math.floor(now / window), 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local colon = string.find(stored, ':', 1, true)
  local sw = tonumber(string.sub(stored, 1, colon - 1))
  if sw >= win then  -- same window (or a clock behind the newest window seen)
    win, count = sw, tonumber(string.sub(stored, colon + 1))
  end
end
local reset = math.max(0, (win + 1) * window - now)
if count + cost > limit then
  reset = math.ceil(reset)
  return {0, limit - count, reset, reset}
end
if ARGV[5] == '1' then
  count = count + cost
  redis.call('SET', KEYS[1], string.format('%.0f:%.0f', win, count), 'PX', ttl(reset))
end
if count == 0 then reset = 0 end
return {1, limit - count, 0, math.ceil(reset)}
