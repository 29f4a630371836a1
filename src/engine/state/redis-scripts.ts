/**
 * The Lua scripts behind the Redis store: each call is one EVALSHA, atomic on the server, so two
 * filterctl hosts counting under one key never lose or double an event. The time is the server's
 * (TIME inside the script), so hosts with skewed clocks agree on windows and delays.
 *
 * Redis converts Lua numbers passed to redis.call with 17 significant digits, so microsecond
 * timestamps (about 1.7e15, below 2^53) travel exactly.
 */

/**
 * rate: a sorted set per key, one member per event scored by its time in microseconds; members
 * older than the window are dropped before counting, so the answer is exact (a limit of 100/h never
 * lets a 101st event through in any hour). The set expires one window after its last event.
 *
 * Its size is bounded: beyond `cap` events in a window, the oldest are folded into one overflow
 * member "!N" (N events) scored by the newest folded event. Folded events are older than every
 * kept one, and '!' sorts before the members' names, so the overflow member is always rank 0; it
 * counts all N until its score leaves the window, then nothing. So past the cap the count errs
 * high (a limit is reached early, never late) and the key holds at most cap + 1 members.
 *
 * KEYS[1] the key; ARGV: window (ms), cap, member (unique per event).
 */
export const RATE_RECORD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local cap = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[1]) * 1000)
redis.call('ZADD', key, now, ARGV[3])
local count = redis.call('ZCARD', key)
local overflow = 0
local first = redis.call('ZRANGE', key, 0, 0)[1]
if string.sub(first, 1, 1) == '!' then
  overflow = tonumber(string.sub(first, 2))
  count = count - 1
end
if count > cap then
  local excess = count - cap
  local from = 0
  if overflow > 0 then from = 1 end
  local folded = redis.call('ZRANGE', key, from, from + excess - 1, 'WITHSCORES')
  local newest = folded[#folded]
  redis.call('ZREMRANGEBYRANK', key, 0, from + excess - 1)
  overflow = overflow + excess
  redis.call('ZADD', key, newest, '!' .. string.format('%d', overflow))
  count = cap
end
redis.call('PEXPIRE', key, ARGV[1])
return count + overflow
`;

/** rate with `record: false`: the same answer (the events in the window, plus one), no write. */
export const RATE_READ = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local since = '(' .. string.format('%d', now - tonumber(ARGV[1]) * 1000)
local count = redis.call('ZCOUNT', key, since, '+inf')
local first = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'LIMIT', 0, 1)[1]
if first and string.sub(first, 1, 1) == '!' then
  count = count - 1 + tonumber(string.sub(first, 2))
end
return count + 1
`;

/**
 * greylist: a hash per triplet, field "first" (first sight, ms) and "passed" (1 once it passed).
 * Never seen, or first seen longer than the retry window ago without passing: a new first sight,
 * deferred, kept for the retry window. Seen less than the delay ago: deferred, unchanged. Seen
 * within [delay, retry window], or passed before: passes, and keeps passing pass_ttl from now.
 *
 * KEYS[1] the key; ARGV: delay, retry window, pass ttl (ms), record (1/0). Answers 1 = defer.
 */
export const GREYLIST = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local record = ARGV[4] == '1'
local state = redis.call('HMGET', key, 'first', 'passed')
local first = tonumber(state[1])
local passes = state[2] == '1'
if not passes and first ~= nil then
  local age = now - first
  if age < tonumber(ARGV[1]) then return 1 end
  passes = age <= tonumber(ARGV[2])
end
if not record then
  if passes then return 0 end
  return 1
end
if passes then
  redis.call('HSET', key, 'passed', '1')
  redis.call('PEXPIRE', key, ARGV[3])
  return 0
end
redis.call('DEL', key)
redis.call('HSET', key, 'first', string.format('%d', now))
redis.call('PEXPIRE', key, ARGV[2])
return 1
`;
