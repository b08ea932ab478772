-- cache/store: write a loaded value with its TTL, unless invalidate() ran during the load.
-- uses: clock
-- KEYS[1] entry hash, KEYS[2] single-flight lock, KEYS[3] invalidation marker
-- ARGV[1] value as JSON, ARGV[2] recompute time in ms, ARGV[3] entry TTL in ms
-- ARGV[4] lock token to release ('' = none)
-- ARGV[5] the invalidation marker cache/fetch saw before the load ('' = none)
-- ARGV[6] the server time (µs) cache/fetch saw, ARGV[7] the marker's lifetime in µs
-- Reply: 1 if the entry was written, 0 if the load was refused: invalidate() replaced the
-- marker since the fetch, or the load took longer than the marker lives (then nobody can
-- tell whether an invalidate() came and went, so an old value might be written back).
-- A marker that was there at the fetch and has expired since is no objection: a newer
-- invalidate() would still have its marker, as it lives longer than this load has taken.
-- The lock is released either way, only if ARGV[4] still owns it. A script is not rolled
-- back when a command in it fails, so the TTL is checked before anything is written: a TTL
-- PEXPIRE would refuse fails the whole call, never leaving an entry without an expiry.

local ttl = tonumber(ARGV[3])
if not ttl or ttl < 1 or ttl > 281474976710656 or ttl % 1 ~= 0 then
  return redis.error_reply('ERR entry TTL must be a whole number of ms in [1, 2^48], got '
    .. ARGV[3])
end
local age = now_us() - tonumber(ARGV[6])
local marker = redis.call('GET', KEYS[3])
local stored = 0
if (not marker or marker == ARGV[5]) and age <= tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  stored = 1
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return stored
