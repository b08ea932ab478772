-- One attempt to take a lock; a notify waiter registers in the same script when it fails.
-- KEYS[1] the lock (value: owner token, lease: PX), KEYS[2] the fencing counter,
-- KEYS[3] the waiting queue (ZSET: waiter's owner token, scored by its first registration, µs),
-- KEYS[4] the waiters (HASH: owner token -> "<registration deadline, ms since epoch> <lease ms>"),
-- KEYS[5] the caller's own wake-up list (a release pushes its fencing token there)
-- ARGV[1] the caller's owner token (random, one per acquire call; also its waiter id),
-- ARGV[2] the caller's lease in ms,
-- ARGV[3] how long in ms the caller will block if not granted ('0': it will not wait, so do
--         not register it, and drop a registration it has),
-- ARGV[4] how long in ms a registration outlives that block (the caller's next attempt)
-- Reply: {1, fencing token} when granted, here or by a release that handed the lock to this
-- waiter while it was between attempts; {0, the holder's remaining lease in ms} when not.
-- uses: clock

if redis.call('get', KEYS[1]) == ARGV[1] then
  -- A release handed it over while we were not blocked: the grant (our fencing token) waits
  -- in our list; the counter holds the same number, since every grant replaces the owner.
  redis.call('del', KEYS[5])
  return {1, tonumber(redis.call('get', KEYS[2]))}
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('zrem', KEYS[3], ARGV[1])
  redis.call('hdel', KEYS[4], ARGV[1])
  return {1, redis.call('incr', KEYS[2])}
end
local lease_left = redis.call('pttl', KEYS[1])
local block = tonumber(ARGV[3])
if block > 0 then
  -- The caller blocks at most until the holder's lease runs out (PTTL -1: no expiry).
  if lease_left > 0 and lease_left < block then block = lease_left end
  local now = now_us()
  local lifetime = block + tonumber(ARGV[4])
  -- NX: a waiter coming back for another attempt keeps its place in the queue.
  redis.call('zadd', KEYS[3], 'NX', now, ARGV[1])
  redis.call('hset', KEYS[4], ARGV[1], int(math.floor(now / 1000) + lifetime) .. ' ' .. ARGV[2])
  -- Each registration carries its own deadline; the keys only ever live longer, so a
  -- caller with a short block cannot cut short another waiter's registration.
  for i = 3, 4 do
    if redis.call('pttl', KEYS[i]) < lifetime then redis.call('pexpire', KEYS[i], lifetime) end
  end
else
  redis.call('zrem', KEYS[3], ARGV[1])
  redis.call('hdel', KEYS[4], ARGV[1])
end
return {0, lease_left}
