-- common/compare_and_delete: delete a key only while it holds the value the caller expects (the
-- release of a lock with no waiters, the drop of a cache's load lock). The one copy in
-- labkit; Redis 8.4 (DELEX key IFEQ value) and Valkey 9 (DELIFEQ key value) do it natively.
-- KEYS[1] the key
-- ARGV[1] the value it must hold
-- Reply: 1 when the key held ARGV[1] and was deleted, else 0.

if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
