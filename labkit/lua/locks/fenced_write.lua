-- FencedStore.write: a write that a holder whose token is behind cannot make.
-- KEYS[1] the record (a hash with fields value, fence, owner)
-- ARGV[1] the value, ARGV[2] the writer's fencing token, ARGV[3] '1' to check the token,
-- '0' to accept every write (the storage of the classic lock examples), ARGV[4] the
-- writer's owner name ('' when it gave none)
-- Reply: 1 when the write landed, 0 when it was refused.
-- The one rule (also FencedStore's docstring and the SQL in notebook 06): accept iff
-- token > highest, or token == highest and the same named owner wrote it; a record never
-- written accepts any token.

if ARGV[3] == '1' then
  local last = redis.call('hget', KEYS[1], 'fence')
  if last then
    local token, highest = tonumber(ARGV[2]), tonumber(last)
    if token < highest then return 0 end
    -- An equal token from another owner is a counter that went back (a failover, a restart
    -- without persistence): two holders with one number. Only the first may go on.
    if token == highest and (ARGV[4] == '' or redis.call('hget', KEYS[1], 'owner') ~= ARGV[4]) then
      return 0
    end
  end
end
redis.call('hset', KEYS[1], 'value', ARGV[1], 'fence', ARGV[2], 'owner', ARGV[4])
return 1
