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
if after <= capacity + 1e-3 then
  if consume then
    redis.call('SET', KEYS[1], string.format('%.17g', now + after), 'PX', ttl(after))
    ahead = after
  end
  return {1, math.floor((capacity - ahead) / interval + 1e-9), 0, math.ceil(ahead)}
end
local remaining = math.floor((capacity - ahead) / interval + 1e-9)
return {0, remaining, math.ceil(after - capacity), math.ceil(ahead)}
