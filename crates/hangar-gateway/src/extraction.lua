-- One caller's model-extraction window, shared by every replica of the gateway, so a caller
-- spread across replicas is watched as a whole (the replica-local window is
-- hangar_guard::ExtractionMonitor; this one counts the same things).
--   KEYS = {prompts, counts, alerted}: a sorted set of the prompts' hashes scored with when each
--          was last seen; a hash of per-slice counts (requests, prompt and completion tokens,
--          the window cut in 60 slices); the key whose presence says an alert was raised in
--          the last window.
--   ARGV = {prompt hash, prompt tokens, completion tokens, window in ms, prompts remembered,
--          min requests, distinct ratio, completion/prompt ratio}
-- Records one request and returns {requests, distinct prompts, prompt tokens, completion
-- tokens, alert}: the window's counts after it, and 1 when they crossed the thresholds and no
-- replica raised an alert for this caller within the window (the caller is then marked), else 0.
-- The clock is the server's, so replicas whose clocks disagree still share one window.
redis.replicate_commands()
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window, remembered = tonumber(ARGV[4]), tonumber(ARGV[5])
local slice = math.max(1, math.ceil(window / 60))
local current = math.floor(now / slice)
local oldest = current - math.ceil(window / slice) + 1

redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local distinct = redis.call('ZCARD', KEYS[1])
if distinct > remembered then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, distinct - remembered - 1)
  distinct = remembered
end

redis.call('HINCRBY', KEYS[2], current .. ':r', 1)
redis.call('HINCRBY', KEYS[2], current .. ':p', ARGV[2])
redis.call('HINCRBY', KEYS[2], current .. ':c', ARGV[3])
local totals = {r = 0, p = 0, c = 0}
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local at, what = string.match(fields[i], '^(%d+):(%a)$')
  if at == nil or tonumber(at) < oldest then
    redis.call('HDEL', KEYS[2], fields[i])
  else
    totals[what] = (totals[what] or 0) + tonumber(fields[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[1], window)
redis.call('PEXPIRE', KEYS[2], window + slice)

-- As ExtractionSignals::of_counts: prompts told apart among the most recent remembered.
local requests = totals.r
local told_apart = math.min(requests, remembered)
local alert = 0
if requests >= tonumber(ARGV[6]) then
  local distinct_ratio = math.min(distinct, told_apart) / told_apart
  local output_ratio = totals.c / math.max(totals.p, 1)
  if distinct_ratio >= tonumber(ARGV[7]) or output_ratio >= tonumber(ARGV[8]) then
    if redis.call('SET', KEYS[3], '1', 'NX', 'PX', window) then
      alert = 1
    end
  end
end
return {requests, distinct, totals.p, totals.c, alert}
