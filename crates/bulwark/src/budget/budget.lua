-- Budgets decided atomically inside Redis (see mod.rs for the algorithm). One script, three
-- operations, so that both share the sweep of stale reservations and the window roll.
--
-- Keys share the hash tag {prefix}: KEYS[1] the expiry zset (reservation id by deadline, ms),
-- KEYS[2] the reservation hash (budget key -> amount held), KEYS[3] the "settled" marker,
-- KEYS[4..] the budget hashes (w window id, s spent, r reserved, sw window of the last soft
-- report, c/cu a provider's ceiling and until when).
-- ARGV[1] op ("reserve" | "settle" | "release"), ARGV[2] now (ms), ARGV[3] reservation id,
-- ARGV[4] deadline (ms, reserve) or marker ttl (ms, settle/release), ARGV[5] the reservation
-- key prefix (for the sweep), then per budget 5 values: window, window end (ms, 0 = never),
-- limit, amount (reserve: held; settle: charged), soft limit (-1 = none).
-- Numbers stay below 2^53 (the client checks limits), where Lua doubles are exact.
-- Returns reserve:  {1, soft flags...} admitted | {0, index, limit, used} refused
--         settle:   {held (1/0), overspent (1/0)} | {2} already settled
--         release:  {held (1/0)}
local op = ARGV[1]
local now = tonumber(ARGV[2])
local id = ARGV[3]
local n = (#ARGV - 5) / 5

local function give_back(rkey)
  local held = redis.call('HGETALL', rkey)
  for i = 1, #held, 2 do
    local left = redis.call('HINCRBY', held[i], 'r', -tonumber(held[i + 1]))
    if left < 0 then redis.call('HSET', held[i], 'r', 0) end
  end
  redis.call('DEL', rkey)
  return #held > 0
end

-- Sweep reservations past their deadline (a bounded batch per call).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
for _, stale in ipairs(due) do
  give_back(ARGV[5] .. stale)
  redis.call('ZREM', KEYS[1], stale)
end

local function roll(key, window, window_end)
  local w = redis.call('HGET', key, 'w')
  if w ~= window then
    redis.call('HSET', key, 'w', window, 's', 0)
  end
  if tonumber(window_end) > 0 then
    -- relative to the caller's now, so that a test clock off the server's still works
    redis.call('PEXPIRE', key, math.max(tonumber(window_end) - now, 0) + 86400000)
  end
  local s = tonumber(redis.call('HGET', key, 's') or '0')
  local r = tonumber(redis.call('HGET', key, 'r') or '0')
  return s, r
end

local function limit_of(key, limit)
  local c = redis.call('HGET', key, 'c')
  local cu = tonumber(redis.call('HGET', key, 'cu') or '0')
  if c and now < cu and tonumber(c) < limit then return tonumber(c) end
  return limit
end

if op == 'reserve' then
  local used = {}
  for i = 1, n do
    local a = 5 + (i - 1) * 5
    local key = KEYS[3 + i]
    local s, r = roll(key, ARGV[a + 1], ARGV[a + 2])
    local limit = limit_of(key, tonumber(ARGV[a + 3]))
    local amount = tonumber(ARGV[a + 4])
    if s + r + amount > limit then
      return {0, i, limit, s + r}
    end
    used[i] = s + r + amount
  end
  local result = {1}
  for i = 1, n do
    local a = 5 + (i - 1) * 5
    local key = KEYS[3 + i]
    redis.call('HINCRBY', key, 'r', ARGV[a + 4])
    redis.call('HINCRBY', KEYS[2], key, ARGV[a + 4])
    local soft = tonumber(ARGV[a + 5])
    local flag = 0
    if soft >= 0 and used[i] >= soft and redis.call('HGET', key, 'sw') ~= ARGV[a + 1] then
      redis.call('HSET', key, 'sw', ARGV[a + 1])
      flag = 1
    end
    result[i + 1] = flag
  end
  redis.call('ZADD', KEYS[1], tonumber(ARGV[4]), id)
  return result
end

if redis.call('EXISTS', KEYS[3]) == 1 then
  return {2}
end
local held = give_back(KEYS[2]) and 1 or 0
redis.call('ZREM', KEYS[1], id)
redis.call('SET', KEYS[3], 1, 'PX', tonumber(ARGV[4]))
if op == 'release' then
  return {held}
end
local overspent = 0
for i = 1, n do
  local a = 5 + (i - 1) * 5
  local key = KEYS[3 + i]
  local s, r = roll(key, ARGV[a + 1], ARGV[a + 2])
  s = redis.call('HINCRBY', key, 's', ARGV[a + 4])
  if s + r > limit_of(key, tonumber(ARGV[a + 3])) then overspent = 1 end
end
return {held, overspent}
