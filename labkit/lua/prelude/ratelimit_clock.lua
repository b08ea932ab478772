-- Prelude for the rate limiters: the script's clock and its keys' TTLs.
-- uses: clock
-- clock(): now in microseconds: ARGV[1] when the caller passed now= (virtual time), else
-- the server's TIME (now_us from the clock prelude).
-- ttl(us): the PEXPIRE/PX argument (whole ms, rounded up, at least 1; a Lua number, which
-- redis.call sends as '%.17g', exact below 2^53) for state useful for
-- `us` more microseconds of the script's clock. Under virtual time it is at least
-- VIRTUAL_TTL_MS of real time, a garbage-collection floor: virtual time may run much faster
-- or slower than real time, and the scripts ignore out-of-date state themselves.
-- VIRTUAL_TTL_MS is labkit.ratelimit.VIRTUAL_TTL in ms (a test holds them equal).

local VIRTUAL_TTL_MS = 86400000
local virtual = ARGV[1] ~= ''

local function clock()
  if virtual then return tonumber(ARGV[1]) end
  return now_us()
end

local function ttl(us)
  local ms = math.max(1, math.ceil(us / 1000))
  if virtual then ms = math.max(ms, VIRTUAL_TTL_MS) end
  return ms
end
