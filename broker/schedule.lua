-- The scheduler's rules, in one place: which waiting process starts, and
-- where.  Part of the prelude of every script in scripts.lua (broker/control.py
-- joins them), so it may use the prelude's helpers (proc, engine, now,
-- event, ...).

-- free slots of every engine with a live heartbeat
local function free_slots()
    local free, names = {}, {}
    for _, name in ipairs(redis.call('SMEMBERS', K.engines)) do
        local e = engine(name)
        if redis.call('EXISTS', e .. ':alive') == 1 then
            local s = redis.call('HMGET', e, 'slots', 'used')
            free[name] = tonumber(s[1] or '0') - tonumber(s[2] or '0')
            names[#names + 1] = name
        end
    end
    table.sort(names)
    return free, names
end

-- Gang scheduling, first come first served: the process at the head of the
-- queue starts when every region has a slot (regions named in rcon on that
-- engine, the others on the engines with most free slots); until then it,
-- and everything behind it, waits.
local function schedule()
    local started = 0
    while true do
        local pid = redis.call('LINDEX', K.queue, 0)
        if not pid then return started end
        local p = proc(pid)
        local n = tonumber(redis.call('HGET', p, 'nregions') or '1')
        local rcon = cjson.decode(redis.call('HGET', p, 'rcon') or '{}')
        local free, names = free_slots()
        local place = {}
        for r = 0, n - 1 do
            local want = rcon[tostring(r)]
            if want then
                if (free[want] or 0) <= 0 then return started end
                place[r] = want
                free[want] = free[want] - 1
            end
        end
        for r = 0, n - 1 do
            if not place[r] then
                local best, most = nil, 0
                for _, name in ipairs(names) do
                    if free[name] > most then best, most = name, free[name] end
                end
                if not best then return started end
                place[r] = best
                free[best] = free[best] - 1
            end
        end
        redis.call('LPOP', K.queue)
        for r = 0, n - 1 do
            local e = engine(place[r])
            redis.call('HSET', p .. ':regions', r, place[r])
            redis.call('HINCRBY', e, 'used', 1)
            redis.call('SADD', e .. ':procs', pid .. ':' .. r)
            redis.call('RPUSH', e .. ':jobs', pid .. ' ' .. r)
        end
        redis.call('HSET', p, 'state', 'running', 'started', now())
        event(pid, 'running', '')
        started = started + 1
    end
end
