-- SlidingLog.hit / peek: exact, with bounded work per decision.
-- uses: ratelimit_clock
-- KEYS[1]  sorted set of admitted units, score = time (microseconds), member
--          '<time>:<seq>' with seq (6 digits, zero-padded) numbering the units of one
--          microsecond, so the members of one time sort in the order they were admitted.
--          The last member of an admission that fills the window ends in
--          ':<full>:<limit>': the time of the oldest live unit then (the one that must leave
--          before another fits) and the limit it was full for, so a limiter with another
--          limit on the same log does not trust the mark.
-- ARGV[1]  now in microseconds, or '' for the server clock
-- ARGV[2]  limit            ARGV[3]  window (microseconds)
-- ARGV[4]  cost             ARGV[5]  1 = consume, 0 = peek
-- ARGV[6]  trim batch: expired entries removed per admission, beyond cost
-- reply    {allowed, remaining, retry_after_us, reset_after_us}
--
-- A request of cost c fits when at most limit - c units are live, so one unit decides it,
-- the (limit - c + 1)-th newest: the request fits when that unit has left the window (or
-- does not exist). For c = 1 that is the limit-th newest, which the newest member names:
-- a window can only fill through an admission, and the last member an admission writes is
-- the newest (units are stamped max(now, newest), so a clock that runs back records at the
-- newest time seen, and counts no shorter). So a decision on a full window reads one
-- member, the newest (ZRANGE -1 -1, O(log n)), and nothing else.
-- An admission counts the live units with ZCOUNT (O(log n); expired entries need not be
-- removed first) and removes at most cost + batch of the oldest expired ones
-- (ZREMRANGEBYRANK, O(log n + removed)): the work per decision is bounded, and the log
-- holds at most limit live entries plus expired ones still waiting, which shrink by at
-- least batch per admission (a denied call writes nothing). Numbers go to redis.call as Lua numbers (sent as
-- '%.17g', exact for these integers below 2^53); int() only where a string is built.

local now = clock()
local window = tonumber(ARGV[3])
local cutoff = now - window  -- entries scored <= cutoff have left the window
local key = KEYS[1]
local newest, at, seq, blocker = -math.huge, nil, 0, nil  -- an empty log: no reset time
local top = redis.call('ZRANGE', key, -1, -1)[1]
if top then
  local colon = string.find(top, ':', 1, true)
  at = string.sub(top, 1, colon - 1)
  local full, full_for = string.match(top, '^(%d+):(%d+)$', colon + 8)
  newest, blocker = tonumber(at), tonumber(full)
  if ARGV[4] == '1' and full_for == ARGV[2] and blocker > cutoff then  -- a full window: denied
    return {0, 0, math.ceil(blocker + window - now), math.ceil(newest + window - now)}
  end
  seq = tonumber(string.sub(top, colon + 1, colon + 6))
end
local limit, cost = tonumber(ARGV[2]), tonumber(ARGV[4])
local live = 0
if top then live = redis.call('ZCOUNT', key, cutoff + 1, '+inf') end  -- scores are whole µs
if live + cost > limit then  -- denied: retry when the (limit - cost + 1)-th newest leaves
  local m = redis.call('ZRANGE', key, cost - limit - 1, cost - limit - 1)[1]
  blocker = tonumber(string.match(m, '^%d+'))
  return {0, limit - live, math.ceil(blocker + window - now),
          math.ceil(math.max(0, newest + window - now))}
end
if ARGV[5] ~= '1' then
  return {1, limit - live, 0, math.ceil(math.max(0, newest + window - now))}
end
local expired = 0
if top then expired = redis.call('ZCARD', key) - live end
if now > newest then at, seq = int(now), 0 end  -- else: record at the newest time seen
local filled = ''  -- the mark for the last member, when this admission fills the window
if live + cost == limit then
  if live > 0 then  -- the oldest live unit, right after the expired ones
    filled = ':' .. string.match(redis.call('ZRANGE', key, expired, expired)[1], '^%d+') .. ':' .. ARGV[2]
  else
    filled = ':' .. at .. ':' .. ARGV[2]
  end
end
if expired > 0 then
  redis.call('ZREMRANGEBYRANK', key, 0, math.min(expired, cost + tonumber(ARGV[6])) - 1)
end
local added = 0
while added < cost do  -- ZADD in chunks: Lua's unpack has a stack limit
  local args = {}
  for _ = 1, math.min(cost - added, 1000) do
    added, seq = added + 1, seq + 1
    args[#args + 1] = at
    args[#args + 1] = string.format('%s:%06d', at, seq)
  end
  if added == cost then args[#args] = args[#args] .. filled end
  redis.call('ZADD', key, unpack(args))
end
local reset = math.max(now, newest) + window - now
redis.call('PEXPIRE', key, ttl(reset))
return {1, limit - live - cost, 0, math.ceil(reset)}
