-- GCRA for one bucket, decided atomically inside Redis (see gcra.rs for the algorithm).
--
-- Redis Lua numbers are doubles, exact only below 2^53; nanoseconds since 1970 are larger, so
-- every instant and duration travels as a pair (seconds, nanoseconds < 1e9) and the script
-- only adds, subtracts and compares pairs, which stays exact. The client computes n * t and
-- tau exactly in integers and sends them as pairs.
--
-- KEYS[1]  the bucket
-- ARGV     inc_s inc_ns   n * t, the time the request's tokens represent
--          tau_s tau_ns   capacity * t
--          [now_s now_ns] optional: the caller's clock (tests); default is the server's TIME,
--                         so that client clock skew can never over-admit
-- Returns  {1, room_s, room_ns, full_s, full_ns}  admitted: time left in the bucket after the
--                                                 request, and time until it is full again
--          {0, wait_s, wait_ns, room_s, room_ns}  refused: wait before retrying, time left now
local E9 = 1000000000

local function norm(s, ns)
  if ns >= E9 then return s + 1, ns - E9 end
  return s, ns
end
local function less(as, ans, bs, bns)
  return as < bs or (as == bs and ans < bns)
end
local function add(as, ans, bs, bns)
  return norm(as + bs, ans + bns)
end
local function sub(as, ans, bs, bns) -- a - b, for a >= b
  if ans < bns then return as - bs - 1, ans + E9 - bns end
  return as - bs, ans - bns
end

local inc_s, inc_ns = tonumber(ARGV[1]), tonumber(ARGV[2])
local tau_s, tau_ns = tonumber(ARGV[3]), tonumber(ARGV[4])
local now_s, now_ns
if ARGV[5] then
  now_s, now_ns = tonumber(ARGV[5]), tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now_s, now_ns = tonumber(t[1]), tonumber(t[2]) * 1000
end

-- base = max(tat, now); a missing bucket is a full one (tat <= now)
local base_s, base_ns = now_s, now_ns
-- the TAT is stored as the string "<seconds>.<nanoseconds>"
local stored = redis.call('GET', KEYS[1])
if stored then
  local dot = string.find(stored, '.', 1, true)
  if dot then
    local s, ns = tonumber(string.sub(stored, 1, dot - 1)), tonumber(string.sub(stored, dot + 1))
    if s and ns and less(now_s, now_ns, s, ns) then base_s, base_ns = s, ns end
  end
end

local new_s, new_ns = add(base_s, base_ns, inc_s, inc_ns)
local lim_s, lim_ns = add(now_s, now_ns, tau_s, tau_ns)
if less(lim_s, lim_ns, new_s, new_ns) then
  local wait_s, wait_ns = sub(new_s, new_ns, lim_s, lim_ns)
  local room_s, room_ns = 0, 0
  if not less(lim_s, lim_ns, base_s, base_ns) then room_s, room_ns = sub(lim_s, lim_ns, base_s, base_ns) end
  return {0, wait_s, wait_ns, room_s, room_ns}
end

local full_s, full_ns = sub(new_s, new_ns, now_s, now_ns)
-- The bucket is full again after full_s.full_ns: then it carries no information and expires.
redis.call('SET', KEYS[1], string.format('%d.%d', new_s, new_ns),
  'PX', string.format('%d', full_s * 1000 + math.floor(full_ns / 1000000) + 1))
local room_s, room_ns = sub(lim_s, lim_ns, new_s, new_ns)
return {1, room_s, room_ns, full_s, full_ns}
