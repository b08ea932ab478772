-- TokenBucket.hit / peek (GCRA)
-- uses: ratelimit_clock
-- KEYS[1]  theoretical arrival time (TAT), as '<whole µs>+<fraction of a µs>'
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  burst (tokens)   ARGV[3]  emission interval (microseconds per token, float)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- reply    {allowed, remaining, retry_after_us, reset_after_us}

local now = clock()
local burst, interval = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
-- The TAT is kept in two parts: today's time in µs is ~2^51, where doubles are 0.25 µs
-- apart, too coarse for a bucket refilling several tokens a µs. The whole part is an exact
-- integer and the fraction keeps the rest, so `ahead` is as exact as when it was stored.
local ahead = 0  -- how far the TAT is ahead of now (µs)
local stored = redis.call('GET', KEYS[1])
if stored then
  local whole, frac = string.match(stored, '^(%d+)%+(.+)$')
  if not whole then whole, frac = stored, '0' end  -- a TAT stored as one number
  ahead = math.max(0, (tonumber(whole) - now) + tonumber(frac))
end
-- the tokens a span of `us` stands for, rounded up but not past float noise: two roundings,
-- so within 1e-15 of the count (0.3 token at burst 2^48, the most)
local function tokens(us)
  local t = us / interval
  return math.ceil(t - math.max(1e-9, 1e-15 * t))
end
local after = ahead + cost * interval
if tokens(after) <= burst then
  if consume then
    local whole = math.floor(after)
    local tat = int(now + whole) .. '+' .. string.format('%.17g', after - whole)
    redis.call('SET', KEYS[1], tat, 'PX', ttl(after))
    ahead = after
  end
  return {1, burst - tokens(ahead), 0, math.ceil(ahead)}
end
return {0, burst - tokens(ahead), math.ceil(after - burst * interval), math.ceil(ahead)}
