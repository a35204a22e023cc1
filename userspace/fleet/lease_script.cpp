#include "fleet/lease_script.h"

namespace helios::fleet {

// Keys: <p>:inst:<id>  heartbeat (info text + " peer=<n>", expires after the ttl)
//       <p>:peer:<n>   instance id holding peer number n (1..max; expires after the ttl): the
//                      number in the cancel keys it issues (docs/fleet.md, "Cancels")
//       <p>:members    sorted set of instance ids (score: last renewal, ms)
//       <p>:q:<item>   hash instance id -> "slice used want since" for one limit of one tenant
//                      (since: ms since when the instance wants and uses none; 0 = it does not)
// The slice arithmetic is fleet/slice.cpp grant_slice; keep the two alike.
std::string_view lease_script() {
  return R"lua(
local p, id, ttl, info = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local want_peer, max_peer = tonumber(ARGV[5]), tonumber(ARGV[6])
-- A peer number: the one held before if it is still free or ours, else the lowest free one.
local function claim(k)
  local key = p .. ':peer:' .. k
  local who = redis.call('GET', key)
  if who == false or who == id then
    redis.call('SET', key, id, 'PX', ttl)
    return true
  end
  return false
end
local peer = 0
if want_peer > 0 and claim(want_peer) then
  peer = want_peer
else
  for k = 1, max_peer do
    if claim(k) then
      peer = k
      break
    end
  end
end
redis.call('SET', p .. ':inst:' .. id, info .. ' peer=' .. peer, 'PX', ttl)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', p .. ':members', now, id)
local alive, ids, infos = {}, {}, {}
for _, m in ipairs(redis.call('ZRANGE', p .. ':members', 0, -1)) do
  local v = redis.call('GET', p .. ':inst:' .. m)
  if v then
    alive[m] = true
    ids[#ids + 1] = m
    infos[#infos + 1] = v
  else
    redis.call('ZREM', p .. ':members', m)
  end
end
local slices = {}
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  local b = 8 + i * 5
  local key = p .. ':q:' .. ARGV[b]
  local limit, used, want = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local whole = ARGV[b + 4] == '1'
  local h = redis.call('HGETALL', key)
  local others, od, live, rank = 0, 0, 1, 0
  local since = 0
  if want > used and used == 0 then
    since = now
    local mine_was = redis.call('HGET', key, id)
    if mine_was then
      local s0 = tonumber(string.match(mine_was, '%S+ %S+ %S+ ?(%S*)')) or 0
      if s0 > 0 then since = s0 end
    end
  end
  local waited_longer = false
  for j = 1, #h, 2 do
    local who = h[j]
    if who ~= id then
      if alive[who] then
        local g, u, w, s = string.match(h[j + 1], '(%S+) (%S+) (%S+) ?(%S*)')
        s = tonumber(s) or 0
        if s > 0 and (since == 0 or s < since) then waited_longer = true end
        if whole then
          others = others + math.max(tonumber(g), tonumber(u))
        else
          others = others + tonumber(g)
        end
        od = od + math.max(tonumber(u), tonumber(w))
        live = live + 1
        if who < id then rank = rank + 1 end
      else
        redis.call('HDEL', key, who)
      end
    end
  end
  local mine = math.max(used, want)
  local total = mine + od
  local target
  if total <= limit then
    local free = limit - total
    local part = free / live
    if whole then
      part = math.floor(part)
      if rank < free - part * live then part = part + 1 end
    end
    target = mine + part
  else
    target = limit * mine / total
    if whole and used == 0 and not waited_longer then
      target = math.ceil(target)
    elseif whole then
      target = math.floor(target)
    end
  end
  local slice = math.min(target, math.max(0, limit - others))
  if whole then slice = math.floor(slice) end
  if slice > 0 then since = 0 end  -- served: no longer in line for a turn
  redis.call('HSET', key, id, string.format('%.17g %.17g %.17g %d', slice, used, want, since))
  redis.call('PEXPIRE', key, ttl * 4)
  slices[#slices + 1] = string.format('%.17g', slice)
end
return {ids, slices, tostring(peer), infos}
)lua";
}

}  // namespace helios::fleet
