-- SessionStore.update_session / refresh_session / set_expiring_fields
-- uses: sessions
-- KEYS[1]  session Hash
-- ARGV[1]  now in ms, or '' for the server clock
-- ARGV[2]  idle timeout (ms)             ARGV[3]  absolute timeout (ms)
-- ARGV[4]  index key prefix (KEYS[1]'s hash tag)    ARGV[5]  token
-- ARGV[6]  the fields' own TTL (ms, HPEXPIRE), or '' for none
-- ARGV[7..] field, json, field, json, ...
-- reply    1 updated (TTL slid), 0 when the session is missing or over

local ttl = touch(KEYS[1], clock_ms(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                  ARGV[4], ARGV[5])
if not ttl then return 0 end
if #ARGV >= 7 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 7))
  if ARGV[6] ~= '' then
    local names = {}
    for i = 7, #ARGV, 2 do names[#names + 1] = ARGV[i] end
    redis.call('HPEXPIRE', KEYS[1], ARGV[6], 'FIELDS', #names, unpack(names))
  end
end
return 1
