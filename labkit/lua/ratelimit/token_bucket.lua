-- TokenBucket.hit / peek (GCRA)
-- uses: ratelimit_clock
-- KEYS[1]  theoretical arrival time (microseconds, a float as a string)
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  burst (tokens)   ARGV[3]  emission interval (microseconds per token, float)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- reply    {allowed, remaining, retry_after_us, reset_after_us}

local now = clock()
local burst, interval = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
local ahead = 0  -- how far the TAT is ahead of now, kept relative for precision
if tat and tat > now then ahead = tat - now end
local capacity = burst * interval
local after = ahead + cost * interval
-- tokens left: burst minus the tokens `ahead` stands for, rounded up but not past float
-- noise: two roundings, so within 1e-15 of the count (0.3 token at burst 2^48, the most)
local function remaining(used_us)
  local used = used_us / interval
  return burst - math.ceil(used - math.max(1e-9, 1e-15 * used))
end
if after <= capacity + 1e-3 then
  if consume then
    redis.call('SET', KEYS[1], string.format('%.17g', now + after), 'PX', ttl(after))
    ahead = after
  end
  return {1, remaining(ahead), 0, math.ceil(ahead)}
end
return {0, remaining(ahead), math.ceil(after - capacity), math.ceil(ahead)}
