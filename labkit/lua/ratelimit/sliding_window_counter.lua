-- SlidingWindowCounter.hit / peek
-- uses: ratelimit_clock
-- KEYS[1]  hash {w = current window number, cur = its count, prev = previous window's count}
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- reply    {allowed, remaining, retry_after_us, reset_after_us}

local now = clock()
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local win = math.floor(now / window)
local elapsed = now - win * window
local h = redis.call('HMGET', KEYS[1], 'w', 'cur', 'prev')
local sw, cur, prev = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
if sw == nil or sw < win - 1 then
  cur, prev = 0, 0
elseif sw == win - 1 then
  prev, cur = cur, 0
elseif sw > win then  -- a clock behind the newest window seen: count in that window
  win, elapsed = sw, 0
end
local weight = (window - elapsed) / window
local estimate = prev * weight + cur
local allowed = estimate + cost <= limit + 1e-9
if allowed and consume then
  cur = cur + cost
  estimate = estimate + cost
  redis.call('HSET', KEYS[1], 'w', int(win), 'cur', int(cur), 'prev', int(prev))
  redis.call('PEXPIRE', KEYS[1], ttl(2 * window - elapsed))
end
local reset = 0
if cur > 0 then reset = 2 * window - elapsed elseif prev > 0 then reset = window - elapsed end
local remaining = math.floor(limit - estimate + 1e-9)
if allowed then return {1, remaining, 0, math.ceil(reset)} end
local retry
if cur + cost <= limit then  -- wait for the previous window's weight to fade enough
  retry = window * (1 - (limit - cur - cost) / prev) - elapsed
else                         -- wait for the next window, where this one's count fades
  local e = 0
  if cur > limit - cost then e = window * (1 - (limit - cost) / cur) end
  retry = window - elapsed + e
end
return {0, remaining, math.ceil(math.max(0, retry)), math.ceil(reset)}
