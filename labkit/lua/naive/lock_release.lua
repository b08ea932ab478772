-- The article's lock release: delete the key only if it still holds this object's token.
-- KEYS[1]: the lock key. ARGV[1]: the token.
-- Reply: 1 when the key was deleted, 0 when it held another token or was gone.

if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("del", KEYS[1])
else
  return 0
end
