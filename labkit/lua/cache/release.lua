-- cache/release: give up the single-flight lock without storing anything.
-- KEYS[1] single-flight lock
-- ARGV[1] the token the lock was taken with
-- Reply: 1 if the lock was ours and is deleted, 0 if it had lapsed or belongs to another caller.

if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
