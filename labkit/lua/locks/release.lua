-- Release: hand the lock to the first registered waiter, or free it when none is left.
-- Also the clean-up of a waiter that stopped waiting (interrupted): its registration and
-- its wake-up list go, and a grant it was handed but never used is passed on.
-- KEYS[1] the lock, KEYS[2] the fencing counter, KEYS[3] the waiting queue (ZSET),
-- KEYS[4] the waiters (HASH token -> "<deadline ms> <lease ms>"), KEYS[5] the caller's
-- own wake-up list
-- ARGV[1] the caller's owner token, ARGV[2] the common start of every waiter's wake-up list
-- (a waiter's list is ARGV[2] .. ':' .. its token: not declared in KEYS, since the waiter is
-- chosen here, but with the same hash tag, so in the same cluster slot as KEYS)
-- Reply: 1 when the caller owned the lock and released it (handed over or freed), else 0.
-- uses: clock

redis.call('zrem', KEYS[3], ARGV[1])
redis.call('hdel', KEYS[4], ARGV[1])
redis.call('del', KEYS[5])
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
local now
while true do
  local first = redis.call('zrange', KEYS[3], 0, 0)[1]
  if not first then break end
  redis.call('zrem', KEYS[3], first)
  local entry = redis.call('hget', KEYS[4], first)
  redis.call('hdel', KEYS[4], first)
  if entry then
    now = now or now_ms()  -- read the clock only when there is a waiter to check
    local sep = string.find(entry, ' ', 1, true)
    -- A registration past its deadline belongs to a waiter that is gone: skip it.
    if tonumber(string.sub(entry, 1, sep - 1)) >= now then
      local lease = string.sub(entry, sep + 1)
      -- The waiter's own token and its own lease: it owns the lock from this instant.
      redis.call('set', KEYS[1], first, 'PX', lease)
      local fence = redis.call('incr', KEYS[2])
      local wake = ARGV[2] .. ':' .. first
      redis.call('rpush', wake, fence)
      redis.call('pexpire', wake, lease)
      return 1
    end
  end
end
redis.call('del', KEYS[1])
return 1
