-- A tenant's two rate buckets, shared by every replica of the gateway: the token buckets a
-- replica keeps on its own (limits.rs), in one Redis string per tenant (KEYS[1]) holding
-- "requests level, tokens level, requests per minute, tokens per minute, time in ms".
--   take: ARGV = {'take', requests per minute, tokens per minute, tokens}, a rate of 0 meaning
--         no limit. Takes one request and the tokens from both buckets or from neither. Returns
--         {0, 0}, or the bucket that refused (1 requests, 2 tokens) and the milliseconds until it
--         could give.
--   give: ARGV = {'give', tokens per minute, tokens}. Gives tokens back, or charges them when
--         negative; the level stays within a minute's worth either way.
-- The clock is the server's, so replicas whose clocks disagree still share one bucket.
-- Redis before 5 replicates scripts whole, which TIME forbids; later ones replicate effects.
redis.replicate_commands()
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local saved = {}
for number in string.gmatch(redis.call('GET', KEYS[1]) or '', '%S+') do
  saved[#saved + 1] = tonumber(number)
end

-- Bucket i's level now at `per_minute`: none without a rate, full when new, else refilled at
-- the rate it had since its last use and held to its size now (replicas reloaded one after the
-- other may still disagree on the rate).
local function level(i, per_minute)
  local value, size, updated = saved[i], saved[i + 2], saved[5]
  if per_minute == 0 then
    return 0
  end
  if value == nil or size == nil or updated == nil or size == 0 then
    return per_minute
  end
  return math.min(value + math.max(now - updated, 0) * size / 60000, per_minute)
end

-- A full bucket is the same as none, so the key lives only while one could be below full: two
-- minutes, from a debt of a minute's worth.
local function save(requests, tokens, requests_rate, tokens_rate)
  local text = string.format('%.17g %.17g %d %d %d', requests, tokens, requests_rate, tokens_rate, now)
  redis.call('SET', KEYS[1], text, 'PX', 120000)
end

if ARGV[1] == 'give' then
  local requests_rate, tokens_rate = saved[3] or 0, tonumber(ARGV[2])
  local tokens = level(2, tokens_rate) + tonumber(ARGV[3])
  tokens = math.max(math.min(tokens, tokens_rate), -tokens_rate)
  save(level(1, requests_rate), tokens, requests_rate, tokens_rate)
  return {0, 0}
end

local rates = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local wants = {1, tonumber(ARGV[4])}
local levels = {}
for i = 1, 2 do
  levels[i] = level(i, rates[i])
  if rates[i] > 0 and levels[i] < wants[i] then
    return {i, math.ceil((wants[i] - levels[i]) * 60000 / rates[i])}
  end
end
local function after(i)
  return rates[i] > 0 and levels[i] - wants[i] or 0
end
save(after(1), after(2), rates[1], rates[2])
return {0, 0}
