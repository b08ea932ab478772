-- Extend: replace the remaining lease, only while the caller still owns the lock.
-- KEYS[1] the lock
-- ARGV[1] the caller's owner token, ARGV[2] the new lease in ms (replaces the remaining one)
-- Reply: 1 when the caller still owned the lock and its lease was replaced, else 0.

if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
