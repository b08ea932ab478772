-- SlidingLog.hit / peek
-- uses: ratelimit_clock
-- KEYS[1]  sorted set of admitted units, score = time (microseconds)
-- KEYS[2]  counter making members unique (same hash tag as KEYS[1])
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- reply    {allowed, remaining, retry_after_us, reset_after_us}

local now = clock()
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local cutoff = now - window  -- entries scored <= cutoff have left the window
local count
if consume then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(cutoff))
  count = redis.call('ZCARD', KEYS[1])
else
  count = redis.call('ZCOUNT', KEYS[1], '(' .. int(cutoff), '+inf')
end
local allowed = count + cost <= limit
if allowed and consume then
  local seq = redis.call('INCRBY', KEYS[2], int(cost)) - cost
  local stamp = int(now)
  local i = 0
  while i < cost do  -- ZADD in chunks: Lua's unpack has a stack limit
    local args = {}
    for j = i + 1, math.min(cost, i + 1000) do
      args[#args + 1] = stamp
      args[#args + 1] = stamp .. ':' .. int(seq + j)
    end
    redis.call('ZADD', KEYS[1], unpack(args))
    i = i + 1000
  end
  count = count + cost
end
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local reset = 0
if count > 0 and newest[2] then reset = math.max(0, tonumber(newest[2]) + window - now) end
if allowed and consume then
  redis.call('PEXPIRE', KEYS[1], ttl(reset))
  redis.call('PEXPIRE', KEYS[2], ttl(reset))
end
if allowed then return {1, limit - count, 0, math.ceil(reset)} end
-- the (count + cost - limit)-th oldest live entry must leave before cost units fit
local need = count + cost - limit
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(cutoff), '+inf',
                          'WITHSCORES', 'LIMIT', int(need - 1), 1)
local retry = math.max(0, tonumber(oldest[2]) + window - now)
return {0, limit - count, math.ceil(retry), math.ceil(reset)}
