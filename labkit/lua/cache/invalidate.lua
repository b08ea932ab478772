-- cache/invalidate: drop an entry and leave a marker, so a running load cannot store the old value.
-- KEYS[1] entry hash, KEYS[2] invalidation marker (same hash tag)
-- ARGV[1] a fresh random marker, ARGV[2] the marker's lifetime in ms
-- Reply: 1 if an entry was dropped, 0 if none was cached.
-- Every load remembers the marker it saw before loading; cache/store refuses to write when the
-- marker has changed since, or when the load took longer than the marker lives.

local dropped = redis.call('UNLINK', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return dropped
