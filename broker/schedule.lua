-- The scheduler's rules, in one place: which processes are refused at
-- submission, which waiting process starts, where, and why the others wait.
-- Part of the prelude of every script in scripts.lua (broker/control.py
-- joins them), so it may use the prelude's helpers (proc, engine, now,
-- event, job_entry, ...).
--
-- Gang scheduling with EASY backfill, as Slurm does it:
--   * a process starts only when every region gets a slot at once: regions
--     named in rcon on that engine, the others one by one on the live engine
--     with most free slots;
--   * processes that cannot run on the live engines even when they are idle
--     (a pinned engine is down, too few live slots) wait with a reason and
--     hold nobody up;
--   * the others start in queue order while they fit; the first that does
--     not fit gets a reservation: its shadow time (the earliest expected end
--     of running processes after which it fits; started + the timeout
--     option; never, for a process without timeout) and the slots spare at
--     that time once its regions are placed;
--   * a later process that fits now starts if it cannot delay the
--     reservation: it ends (its timeout) by the shadow time, or it fits in
--     the slots that are both free now and spare at the shadow time, which
--     it then uses up.  A process without timeout can only do the latter;
--   * a pass tries to place at most DEPTH queued processes (Slurm's
--     bf_max_job_test) among the first LOOK (those that cannot run on the
--     live engines are only passed over, which is cheap, so they cannot
--     hide the rest), so it costs the same however long the queue: those
--     further back wait their turn to be looked at, with the reason that
--     says so.  A process's queue position is its place in the queue, read
--     when asked (broker/control.py), not written by every pass.

local DEPTH, LOOK = 100, 1000

-- Engines ever registered, name -> slots: what a process may ask for.  An
-- engine that is down may come back, so it is never forgotten here.
local function remember_engine(name, slots)
    redis.call('HSET', K.known, name, slots)
end

local function plural(n, what)
    return n .. ' ' .. what .. (n == 1 and '' or 's')
end

local function copy(t)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
end

-- rcon's pins, counted per engine: {name, count} sorted by name (stable reasons)
local function pins(rcon)
    local count, out = {}, {}
    for _, name in pairs(rcon) do
        if name ~= APP then count[name] = (count[name] or 0) + 1 end
    end
    for name, k in pairs(count) do out[#out + 1] = {name = name, count = k} end
    table.sort(out, function(a, b) return a.name < b.name end)
    return out
end

-- Why a process of n regions pinned by rcon can never run on this cluster
-- (checked against every engine ever known), or nil.
local function refusal(n, rcon)
    local known, total = {}, 0
    local flat = redis.call('HGETALL', K.known)
    for i = 1, #flat, 2 do
        known[flat[i]] = tonumber(flat[i + 1])
        total = total + known[flat[i]]
    end
    for _, pin in ipairs(pins(rcon)) do
        if not known[pin.name] then
            return 'rcon names engine ' .. pin.name .. ', which is not known to the cluster'
        end
        if pin.count > known[pin.name] then
            return 'rcon pins ' .. plural(pin.count, 'region') .. ' on engine ' .. pin.name .. ', which has '
                .. plural(known[pin.name], 'slot')
        end
    end
    for _, name in pairs(rcon) do
        if name == APP then n = n - 1 end         -- run by its owner's application engine
    end
    if n > total then
        return plural(n, 'region') .. ' on engines, but the cluster has ' .. plural(total, 'slot') .. ' in all'
    end
    return nil
end

-- The engines with a live heartbeat: names (sorted: placement ties go the
-- same way every time), and free and total slots by name.
local function live_engines()
    local names, free, slots = {}, {}, {}
    for _, name in ipairs(redis.call('SMEMBERS', K.engines)) do
        local e = engine(name)
        if redis.call('EXISTS', e .. ':alive') == 1 then
            local s = redis.call('HMGET', e, 'slots', 'used')
            slots[name] = tonumber(s[1] or '0')
            free[name] = slots[name] - tonumber(s[2] or '0')
            names[#names + 1] = name
        end
    end
    table.sort(names)
    return {names = names, free = free, slots = slots}
end

-- Where n regions go given free slots by engine: those pinned by rcon on
-- their engine, the others one by one on the engine with most free slots.
-- Returns {region -> engine}, or nil when they do not all fit.
local function place(n, rcon, free, names)
    local left, at = copy(free), {}
    for r = 0, n - 1 do
        local want = rcon[tostring(r)]
        if want == APP then
            at[r] = APP                      -- its owner's application engine: no slot
        elseif want then
            if (left[want] or 0) <= 0 then return nil end
            at[r] = want
            left[want] = left[want] - 1
        end
    end
    for r = 0, n - 1 do
        if not at[r] then
            local best, most = nil, 0
            for _, name in ipairs(names) do
                if left[name] > most then best, most = name, left[name] end
            end
            if not best then return nil end
            at[r] = best
            left[best] = most - 1
        end
    end
    return at
end

-- Why a process cannot run on the live engines even when they are idle
-- (it may once engines come back), or nil.
local function unplaceable(n, rcon, live)
    for _, pin in ipairs(pins(rcon)) do
        local slots = live.slots[pin.name]
        if not slots then return 'waiting for engine ' .. pin.name .. ' (not running)' end
        if pin.count > slots then
            return 'waiting for ' .. plural(pin.count, 'slot') .. ' on engine ' .. pin.name .. ' (it has '
                .. slots .. ')'
        end
    end
    if not place(n, rcon, live.slots, live.names) then
        local total = 0
        for _, s in pairs(live.slots) do total = total + s end
        return 'waiting for ' .. plural(n, 'slot') .. ' (running engines have ' .. total .. ')'
    end
    return nil
end

-- What a process that does not fit in the free slots now is short of.
local function shortfall(n, rcon, free)
    for _, pin in ipairs(pins(rcon)) do
        if free[pin.name] < pin.count then
            return 'waiting for ' .. plural(pin.count, 'slot') .. ' on engine ' .. pin.name .. ' ('
                .. free[pin.name] .. ' free)'
        end
    end
    local total = 0
    for _, f in pairs(free) do total = total + f end
    return 'waiting for ' .. plural(n, 'slot') .. ' (' .. total .. ' free)'
end

-- A process's time limit in seconds (its timeout option), or nil.
local function time_limit(options)
    local t = tonumber(cjson.decode(options or '{}').timeout)
    if t and t > 0 then return t end
    return nil
end

-- The slots running processes hold on the live engines, as
-- {ends = expected end, held = {engine -> slots}}, soonest end first.  The
-- engines' procs sets list exactly the regions holding slots, so only
-- running processes are read.  A process without time limit ends at
-- math.huge; one past its expected end is taken to end now.
local function releases(live, t)
    local held = {}
    for _, name in ipairs(live.names) do
        for _, job in ipairs(redis.call('SMEMBERS', engine(name) .. ':procs')) do
            local pid = string.match(job, '^(%d+):')
            held[pid] = held[pid] or {}
            held[pid][name] = (held[pid][name] or 0) + 1
        end
    end
    local out = {}
    for pid, slots in pairs(held) do
        local rec = redis.call('HMGET', proc(pid), 'started', 'options')
        local limit, ends = time_limit(rec[2]), math.huge
        if limit then ends = math.max(tonumber(rec[1] or t) + limit, t) end
        out[#out + 1] = {ends = ends, held = slots}
    end
    table.sort(out, function(a, b) return a.ends < b.ends end)
    return out
end

-- the slots a placement takes (application engines' regions take none)
local function take(slots, at)
    for _, name in pairs(at) do
        if name ~= APP then slots[name] = slots[name] - 1 end
    end
end

-- The reservation of a process that does not fit now: its shadow time, and
-- the slots by engine still spare at that time once its regions are placed.
local function reserve(n, rcon, live, ends)
    local free, i = copy(live.free), 1
    while i <= #ends do
        local shadow = ends[i].ends
        while i <= #ends and ends[i].ends == shadow do      -- everything that ends then
            for name, k in pairs(ends[i].held) do free[name] = free[name] + k end
            i = i + 1
        end
        local at = place(n, rcon, free, live.names)
        if at then
            take(free, at)
            return shadow, free
        end
    end
    -- it fits the idle engines, so this is reached only if their used
    -- counts and procs sets disagree: then promise no spare slots
    return math.huge, {}
end

-- free slots that are also spare at the shadow time
local function within(free, spare)
    local out = {}
    for name, f in pairs(free) do out[name] = math.min(f, spare[name] or 0) end
    return out
end


local function start(pid, at, n)
    local p = proc(pid)
    for r = 0, n - 1 do
        redis.call('HSET', p .. ':regions', r, at[r])
        if at[r] == APP then                 -- waits for its owner's engine to claim it
            redis.call('SADD', K.apps, pid .. ':' .. r)
            redis.call('SET', beat_key(pid, r), APP, 'PX', APP_START_MS)
        else
            local e = engine(at[r])
            redis.call('HINCRBY', e, 'used', 1)
            redis.call('SADD', e .. ':procs', pid .. ':' .. r)
            redis.call('RPUSH', e .. ':jobs', job_entry(pid, r))
        end
    end
    redis.call('LREM', K.queue, 1, pid)
    count_waiting(pid, -1)
    redis.call('HSET', p, 'state', 'running', 'started', now(), 'reason', '')
    redis.call('HDEL', p, 'expected_start')
    event(pid, 'running', '')
end

-- Start what may start (the rule at the top of this file); every process
-- looked at and still waiting gets its reason in its record, and the
-- reserved one its expected start when known.  Returns how many started.
local function schedule()
    local t = tonumber(now())
    local live = live_engines()
    local reserved, shadow, spare                -- the reservation, once made
    local started, tried = 0, 0
    for _, pid in ipairs(redis.call('LRANGE', K.queue, 0, LOOK - 1)) do
        if tried == DEPTH then break end
        local p = proc(pid)
        local rec = redis.call('HMGET', p, 'nregions', 'rcon', 'options', 'reason', 'expected_start')
        local n, rcon, limit = tonumber(rec[1] or '1'), cjson.decode(rec[2] or '{}'), time_limit(rec[3])
        local reason, at, expected = unplaceable(n, rcon, live), nil, ''
        if not reason then tried = tried + 1 end
        if reason then
            -- waits for engines to come back; holds nobody up
        elseif not reserved then
            at = place(n, rcon, live.free, live.names)
            if not at then
                reserved = pid
                shadow, spare = reserve(n, rcon, live, releases(live, t))
                reason = shortfall(n, rcon, live.free) .. '; first in line'
                if shadow < math.huge then expected = string.format('%.3f', shadow) end
            end
        else
            if limit and t + limit <= shadow then
                at = place(n, rcon, live.free, live.names)
            else
                at = place(n, rcon, within(live.free, spare), live.names)
                if at then take(spare, at) end
            end
            if not at then
                reason = place(n, rcon, live.free, live.names)
                    and 'waiting: starting now would delay process ' .. reserved .. ' (first in line)'
                    or shortfall(n, rcon, live.free)
            end
        end
        if at then
            start(pid, at, n)
            take(live.free, at)
            started = started + 1
        elseif rec[4] ~= reason or (rec[5] or '') ~= expected then
            redis.call('HSET', p, 'reason', reason, 'expected_start', expected)
        end
    end
    return started
end
