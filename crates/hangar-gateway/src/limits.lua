-- The tenants' rate buckets, shared by every replica of the gateway: the same token buckets a
-- replica keeps on its own (limits.rs), one Redis hash each.
--   take: KEYS = {requests bucket, tokens bucket}, ARGV = {'take', requests per minute,
--         tokens per minute, tokens}, a rate of 0 meaning no limit. Takes one request and the
--         tokens from both buckets or from neither. Returns {0, 0}, or the bucket that refused
--         (1 requests, 2 tokens) and the milliseconds until it could give.
--   give: KEYS = {tokens bucket}, ARGV = {'give', tokens per minute, tokens}. Gives tokens back,
--         or charges them when negative; the level stays within a minute's worth either way.
-- The clock is the server's, so replicas whose clocks disagree still share one bucket.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- A bucket's level now: full when new, cut down to a new size, else refilled since its last use.
local function level(key, per_minute)
  local saved = redis.call('HMGET', key, 'level', 'perMinute', 'updated')
  local value, size, updated = tonumber(saved[1]), tonumber(saved[2]), tonumber(saved[3])
  if value == nil or size == nil or updated == nil then
    return per_minute
  end
  if size ~= per_minute then
    return math.min(value, per_minute)
  end
  return math.min(value + math.max(now - updated, 0) * per_minute / 60000, per_minute)
end

-- A full bucket is the same as none, so a key lives only while it could be below full: two
-- minutes, from a debt of a minute's worth.
local function save(key, value, per_minute)
  redis.call('HSET', key, 'level', tostring(value), 'perMinute', tostring(per_minute),
    'updated', tostring(now))
  redis.call('PEXPIRE', key, 120000)
end

if ARGV[1] == 'give' then
  local per_minute = tonumber(ARGV[2])
  local value = level(KEYS[1], per_minute) + tonumber(ARGV[3])
  save(KEYS[1], math.max(math.min(value, per_minute), -per_minute), per_minute)
  return {0, 0}
end

local wants = {
  {KEYS[1], tonumber(ARGV[2]), 1},
  {KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4])},
}
local levels = {}
for i, want in ipairs(wants) do
  if want[2] > 0 then
    levels[i] = level(want[1], want[2])
    if levels[i] < want[3] then
      return {i, math.ceil((want[3] - levels[i]) * 60000 / want[2])}
    end
  end
end
for i, want in ipairs(wants) do
  if want[2] > 0 then
    save(want[1], levels[i] - want[3], want[2])
  end
end
return {0, 0}
