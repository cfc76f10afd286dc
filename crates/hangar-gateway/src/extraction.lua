-- One caller's model-extraction window, shared by every replica of the gateway, so a caller
-- spread across replicas is watched as a whole (the replica-local window is
-- hangar_guard::ExtractionMonitor; this one counts the same things).
--   KEYS = {prompts, counts, alerted}: a sorted set of the prompts' hashes scored with when each
--          was last seen; a hash of the counts (requests, prompt and completion tokens) of each
--          slice of the window (cut in 60) and their totals; the key whose presence says an
--          alert was raised in the last window. A request leaves the counts, and a prompt the
--          set, within a slice of its time.
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

-- The counts hash holds each slice's counts ('<slice>:r', ':p', ':c'), their totals ('r',
-- 'p', 'c') and the oldest slice the totals include ('o'). Only the first request of a new
-- slice subtracts the slices that left the window, prunes the prompts and renews the keys'
-- lives (a window and a slice): adding up all 60 slices, or pruning at every request, cost a
-- busy caller's call several times as much.
local held = tonumber(redis.call('HGET', KEYS[2], 'o'))
local slices = current - oldest + 1
redis.call('ZADD', KEYS[1], now, ARGV[1])
if held ~= oldest then
  if held == nil or held + slices <= oldest then
    -- Nothing held is in the window (or nothing is held).
    redis.call('DEL', KEYS[2])
  else
    for gone = held, oldest - 1 do
      local counts = redis.call('HMGET', KEYS[2], gone .. ':r', gone .. ':p', gone .. ':c')
      for i, what in ipairs({'r', 'p', 'c'}) do
        -- As text: a Lua number this large would be written with an exponent.
        if counts[i] and counts[i] ~= '0' then
          redis.call('HINCRBY', KEYS[2], what, '-' .. counts[i])
        end
      end
      redis.call('HDEL', KEYS[2], gone .. ':r', gone .. ':p', gone .. ':c')
    end
  end
  redis.call('HSET', KEYS[2], 'o', oldest)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('PEXPIRE', KEYS[1], window + slice)
  redis.call('PEXPIRE', KEYS[2], window + slice)
end
local distinct = redis.call('ZCARD', KEYS[1])
if distinct > remembered then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, distinct - remembered - 1)
  distinct = remembered
end
redis.call('HINCRBY', KEYS[2], current .. ':r', 1)
redis.call('HINCRBY', KEYS[2], current .. ':p', ARGV[2])
redis.call('HINCRBY', KEYS[2], current .. ':c', ARGV[3])
local totals = {
  r = redis.call('HINCRBY', KEYS[2], 'r', 1),
  p = redis.call('HINCRBY', KEYS[2], 'p', ARGV[2]),
  c = redis.call('HINCRBY', KEYS[2], 'c', ARGV[3]),
}

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
