-- A tenant's two rate buckets and its requests in flight, shared by every replica of the
-- gateway. The rate buckets are the ones a replica keeps on its own (limits.rs), in one Redis
-- string per tenant ("requests level, tokens level, requests per minute, tokens per minute,
-- time in ms"); the requests in flight are a sorted set of places, each scored with the time
-- its lease ends, so the places of a replica that died are freed when their leases end.
--   take:    KEYS = {rates[, in flight]},
--            ARGV = {'take', requests per minute, tokens per minute, tokens[, most in flight,
--            place, lease in ms, place freed…]}, a rate of 0 meaning no limit. Frees the places
--            freed (the replica's requests that ended since it last sent them), then takes one
--            request and the tokens from both buckets and, with a most in flight, a place in
--            flight, or none of them. Returns {0, 0, requests level, tokens level} with the
--            levels after the take in thousandths, or what refused (1 requests, 2 tokens, 3 in
--            flight), the milliseconds until it could give and, for a rate, the levels before
--            the take.
--   give:    KEYS = {rates}, ARGV = {'give', tokens per minute, tokens…}. Gives each amount of
--            tokens back in turn, or charges it when negative; the level stays within a minute's
--            worth after each, as a local bucket's after each settlement (so a refund sent
--            after a charge is not lost in a debt past that).
--   release: KEYS = {in flight}, ARGV = {'release', place…}. Frees the places.
--   renew:   KEYS = {in flight}, ARGV = {'renew', lease in ms, places to put back, place…}.
--            Extends the leases of the places still held (a long stream outlives one lease): the
--            first `places to put back` ones are put back if Redis lost them, the others only
--            extended if they are there (a renewal may arrive after the place's release, and a
--            take that timed out may never have run). Returns those others it did not find.
-- The clock is the server's, so replicas whose clocks disagree still share one bucket.
-- Redis before 5 replicates scripts whole, which TIME forbids; later ones replicate effects.
redis.replicate_commands()
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

if ARGV[1] == 'release' then
  for i = 2, #ARGV do
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
  return {0, 0}
end

if ARGV[1] == 'renew' then
  local lease, put_back = tonumber(ARGV[2]), tonumber(ARGV[3])
  local missing = {}
  for i = 4, #ARGV do
    if i - 3 <= put_back then
      -- Redis lost it (a restart without persistence, a failover before it was replicated, a
      -- lapse while Redis was away) and its request still runs, as its replica just checked.
      -- (Not ZADD GT, which Redis 5 and 6.0 lack, and all renewals of a place are its
      -- replica's anyway.)
      redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
    elseif redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i]) == 0 then
      -- Not there (or renewed already within this millisecond: putting it back is harmless).
      missing[#missing + 1] = ARGV[i]
    end
  end
  redis.call('PEXPIRE', KEYS[1], lease)
  return missing
end

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
  local tokens = level(2, tokens_rate)
  for i = 3, #ARGV do
    tokens = math.max(math.min(tokens + tonumber(ARGV[i]), tokens_rate), -tokens_rate)
  end
  save(level(1, requests_rate), tokens, requests_rate, tokens_rate)
  return {0, 0}
end

local most_in_flight = tonumber(ARGV[5])
if most_in_flight then
  for i = 8, #ARGV do
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
  -- Places whose lease ended belong to replicas that are gone.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= most_in_flight then
    return {3, 1000}
  end
end

local rates = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local wants = {1, tonumber(ARGV[4])}
local levels = {level(1, rates[1]), level(2, rates[2])}
-- A level in thousandths: Redis would cut a Lua number's fraction.
local function reported(level)
  return math.floor(level * 1000)
end
for i = 1, 2 do
  if rates[i] > 0 and levels[i] < wants[i] then
    local wait = math.ceil((wants[i] - levels[i]) * 60000 / rates[i])
    return {i, wait, reported(levels[1]), reported(levels[2])}
  end
end
local function after(i)
  return rates[i] > 0 and levels[i] - wants[i] or 0
end
if rates[1] > 0 or rates[2] > 0 then
  save(after(1), after(2), rates[1], rates[2])
end
if most_in_flight then
  local lease = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[2], now + lease, ARGV[6])
  redis.call('PEXPIRE', KEYS[2], lease)
end
return {0, 0, reported(after(1)), reported(after(2))}
