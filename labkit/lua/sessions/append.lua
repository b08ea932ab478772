-- SessionStore.append_session
-- uses: sessions
-- KEYS[1]  session Hash
-- ARGV[1]  now in ms, or '' for the server clock
-- ARGV[2]  idle timeout (ms)             ARGV[3]  absolute timeout (ms)
-- ARGV[4]  index key prefix (KEYS[1]'s hash tag)    ARGV[5]  token
-- ARGV[6]  field                         ARGV[7]  the value to append (JSON text)
-- reply    1 appended (TTL slid), 0 when the session is missing or over, -1 when the
--          field holds something other than a JSON array (the field is left as it was)

local ttl = touch(KEYS[1], clock_ms(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                  ARGV[4], ARGV[5])
if not ttl then return 0 end
local current = redis.call('HGET', KEYS[1], ARGV[6])
-- The read and the write happen inside one script, so no other request can append in
-- between: that is what a read in the app followed by HSET cannot promise. The array is
-- spliced as text (every value was written by json.dumps), never decoded and re-encoded.
if not current or string.match(current, '^%[%s*%]$') then
  current = '[' .. ARGV[7] .. ']'
elseif string.sub(current, 1, 1) == '[' and string.sub(current, -1) == ']' then
  current = string.sub(current, 1, -2) .. ',' .. ARGV[7] .. ']'
else
  return -1
end
redis.call('HSET', KEYS[1], ARGV[6], current)
return 1
