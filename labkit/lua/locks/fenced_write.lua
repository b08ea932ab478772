-- FencedStore.write: a write that a lower fencing token than one already seen cannot make.
-- KEYS[1] the record (a hash with fields value, fence)
-- ARGV[1] the value, ARGV[2] the writer's fencing token, ARGV[3] '1' to check the token,
-- '0' to accept every write (the storage of the classic lock examples)
-- Reply: 1 when the write landed, 0 when a higher token had already written.

local last = tonumber(redis.call('hget', KEYS[1], 'fence') or '0')
if ARGV[3] == '1' and tonumber(ARGV[2]) < last then
  return 0
end
redis.call('hset', KEYS[1], 'value', ARGV[1], 'fence', ARGV[2])
return 1
