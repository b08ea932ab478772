-- SlidingLog.hit / peek: exact, with bounded work per decision.
-- uses: ratelimit_clock
-- KEYS[1]  sorted set of admitted units, score = time (microseconds),
--          member = '<time>:<n>' (n = the unit's place among the live units, so unique)
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- ARGV[6]  trim batch: expired entries removed per consuming call, beyond cost
-- reply    {allowed, remaining, retry_after_us, reset_after_us}
--
-- The live units are counted with ZCOUNT, O(log n) whatever the log holds, so expired
-- entries never have to be removed before a decision. A consuming call removes at most
-- cost + batch of the oldest expired ones (ZREMRANGEBYRANK, O(log n + removed)): the work
-- per decision is bounded, and the log holds at most limit live entries plus the expired
-- ones still waiting, which shrink by at least batch per consuming call.

local now = clock()
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
local cutoff = now - window  -- entries scored <= cutoff have left the window
local live = redis.call('ZCOUNT', KEYS[1], '(' .. int(cutoff), '+inf')
if consume then
  local expired = redis.call('ZCARD', KEYS[1]) - live
  if expired > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, math.min(expired, cost + tonumber(ARGV[6])) - 1)
  end
end
local allowed = live + cost <= limit
if allowed and consume then
  local stamp = int(now)
  local added, n = 0, live
  while added < cost do  -- ZADD in chunks: Lua's unpack has a stack limit
    local args = {'NX'}
    for _ = 1, math.min(cost - added, 1000) do
      n = n + 1
      args[#args + 1] = stamp
      args[#args + 1] = stamp .. ':' .. n
    end
    -- NX: a member can only exist already if the caller's clock went back; skip its name
    added = added + redis.call('ZADD', KEYS[1], unpack(args))
  end
  live = live + cost
  local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  local reset = math.max(0, newest + window - now)
  redis.call('PEXPIRE', KEYS[1], ttl(reset))
  return {1, limit - live, 0, math.ceil(reset)}
end
local reset = 0
if live > 0 then
  reset = math.max(0, tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) + window - now)
end
if allowed then return {1, limit - live, 0, math.ceil(reset)} end
-- the (live + cost - limit)-th oldest live entry must leave before cost units fit
local need = live + cost - limit
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(cutoff), '+inf',
                          'WITHSCORES', 'LIMIT', int(need - 1), 1)
local retry = math.max(0, tonumber(oldest[2]) + window - now)
return {0, limit - live, math.ceil(retry), math.ceil(reset)}
