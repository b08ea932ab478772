-- cache/fetch: read a cache-aside entry and, when a load may follow, try the single-flight lock.
-- uses: clock
-- KEYS[1] entry hash (v = JSON value, d = how long the last recompute took, in ms)
-- KEYS[2] single-flight lock, KEYS[3] invalidation marker (all three share one hash tag)
-- ARGV[1] lock token ('' = do not lock), ARGV[2] lock TTL in ms
-- ARGV[3] stale window in ms: the entry is fresh while PTTL > ARGV[3]
-- ARGV[4] XFetch factor -beta * ln(rand), drawn by the client ('0' = XFetch off)
-- Reply: {value or nil, PTTL, 1 if the lock was taken, state} with state 0 = fresh,
-- 1 = fresh but XFetch says recompute early, 2 = stale, 3 = missing. For states 1-3 (a load
-- may follow) two more items: the invalidation marker now ('' = none) and the server time in
-- µs; the load hands both back to cache/store, which refuses to write if invalidate() ran in
-- between. The lock is tried in this same atomic step, so a caller that read an entry just
-- before someone else refreshed it cannot take the lock and recompute it again.

local got = redis.call('HMGET', KEYS[1], 'v', 'd')
local pttl = redis.call('PTTL', KEYS[1])
local stale = tonumber(ARGV[3])
local state = 0
if not got[1] then
  state = 3
elseif pttl >= 0 and pttl <= stale then
  state = 2
elseif pttl >= 0 and tonumber(got[2] or '0') * tonumber(ARGV[4]) >= pttl - stale then
  state = 1
end
if state == 0 then return {got[1], pttl, 0, 0} end
-- TIME before the first write: Redis < 7 needs effects replication switched on first.
local now = int(now_us())
local granted = 0
if ARGV[1] ~= '' then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then granted = 1 end
end
return {got[1], pttl, granted, state, redis.call('GET', KEYS[3]) or '', now}
