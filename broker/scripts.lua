-- Atomic control-plane updates.  Every multi-step change to processes,
-- engines and the queue happens in one of these scripts.  The file is a
-- prelude (shared functions) followed by scripts, each starting with a line
-- "-- @script <name>"; broker/control.py prepends the prelude and the
-- scheduler (schedule.lua) to each.
-- Key names mirror broker/keys.py.

local P = 'pstack'
local K = {pid = P .. ':pid', procs = P .. ':procs', queue = P .. ':queue',
           events = P .. ':events', engines = P .. ':engines', stats = P .. ':stats',
           known = P .. ':known', apps = P .. ':apps', submitting = P .. ':submitting',
           ended = P .. ':ended', reaped = P .. ':reaped', grace = P .. ':reap_grace', waiting = P .. ':waiting',
           refusals = P .. ':refusals'}
-- rcon's value for a region its owner's application engine (pcli.Engine)
-- runs: it takes no engine slot; the owner claims it through the scheduler.
local APP = '@app'
local APP_START_MS = 60000      -- an application engine must claim its region within this
local ENDED = {finished = true, failed = true, killed = true}

local function proc(pid) return P .. ':proc:' .. pid end
local function engine(name) return P .. ':engine:' .. name end
local function beat_key(pid, region) return proc(pid) .. ':beat:' .. region end
-- a process's private keys, under its owner's prefix (readable by the owner only)
local function private(pid)
    return P .. ':u:' .. redis.call('HGET', proc(pid), 'owner') .. ':p:' .. pid
end

-- the process's incarnation token (a private key: it marks the process's
-- data-plane frames), or false when there is no such process
local function token_of(pid)
    local owner = redis.call('HGET', proc(pid), 'owner')
    return owner and redis.call('GET', P .. ':u:' .. owner .. ':p:' .. pid .. ':token')
end

-- A user's request (broker/keys.py: its inbox) is served once: it leaves
-- the stream in the same script that acts on it and answers it.
local function inbox(user) return P .. ':u:' .. user .. ':in:' end

local function take_request(user, id)
    return redis.call('XDEL', inbox(user) .. 'requests', id) == 1
end

-- the answer to request id of user, as JSON text
local function post(user, id, text)
    local key = inbox(user) .. 'reply:' .. id
    redis.call('RPUSH', key, text)
    redis.call('EXPIRE', key, 300)
    return text
end

local function answer(user, id, value) return post(user, id, cjson.encode(value)) end

local function now()
    local t = redis.call('TIME')
    return string.format('%d.%06d', t[1], t[2])
end

local function event(pid, state, reason)
    redis.call('XADD', K.events, 'MAXLEN', '~', 10000, '*', 'pid', pid, 'state', state, 'reason', reason or '')
end

-- Fencing: a write from a worker or daemon names the process's incarnation
-- token; one that does not match (a worker from before a crash, another
-- process) is refused and counted in pstack:stats.
local function fenced(pid, token, what)
    if token ~= '' and token_of(pid) == token then return false end
    redis.call('HINCRBY', K.stats, what, 1)
    return true
end

-- the job-list entry for one region: "pid region token"
local function job_entry(pid, region)
    return pid .. ' ' .. region .. ' ' .. (token_of(pid) or '')
end

-- one more (by = 1) or one fewer (-1) waiting process of pid's owner
-- (pd/quota.py caps how many a user may have)
local function count_waiting(pid, by)
    redis.call('HINCRBY', K.waiting, redis.call('HGET', proc(pid), 'owner'), by)
end

-- give back the slot a region held on an engine (once)
local function release(name, pid, region)
    redis.call('DEL', beat_key(pid, region))
    if name == APP then
        redis.call('SREM', K.apps, pid .. ':' .. region)
        return
    end
    local e = engine(name)
    if redis.call('SREM', e .. ':procs', pid .. ':' .. region) == 1 then
        if tonumber(redis.call('HGET', e, 'used') or '0') > 0 then redis.call('HINCRBY', e, 'used', -1) end
    end
    redis.call('LREM', e .. ':jobs', 0, job_entry(pid, region))
    redis.call('LREM', e .. ':taken', 0, job_entry(pid, region))
end

-- the record's end state; the time it ended, for purge and the results' expiry
local function mark_ended(pid, state, reason)
    local t = now()
    redis.call('HSET', proc(pid), 'state', state, 'reason', reason or '', 'ended', t)
    redis.call('ZADD', K.ended, t, pid)
    event(pid, state, reason)
end

-- end a process and all its regions, once; daemons stop what still runs
local function end_process(pid, state, reason)
    local p = proc(pid)
    local cur = redis.call('HGET', p, 'state')
    if not cur or ENDED[cur] then return 0 end
    if cur == 'waiting' then
        redis.call('LREM', K.queue, 0, pid)
        count_waiting(pid, -1)
    end
    local regions = redis.call('HGETALL', p .. ':regions')
    for i = 1, #regions, 2 do release(regions[i + 1], pid, regions[i]) end
    redis.call('ZREM', K.submitting, pid)
    redis.call('HDEL', p, 'expected_start', 'phase', 'lease')   -- queue and submission notes
    mark_ended(pid, state, reason)
    return 1
end

-- DEL keys, a thousand at a time (unpack's stack is limited)
local function delete(names)
    for i = 1, #names, 1000 do
        redis.call('DEL', unpack(names, i, math.min(i + 999, #names)))
    end
end

-- Every key of an ended process, gone (broker/keys.py lists them: a new key
-- of a process must be added here).  Returns how many keys it named.
local function purge_process(pid)
    local p = proc(pid)
    local rec = redis.call('HMGET', p, 'owner', 'nregions')
    if rec[1] then
        local own = P .. ':u:' .. rec[1] .. ':p:' .. pid
        local doomed = {p, p .. ':regions', p .. ':claims', own .. ':token', own .. ':endpoints', own .. ':curve',
                        own .. ':app', own .. ':partition', own .. ':instance', own .. ':results', own .. ':log'}
        for r = 0, tonumber(rec[2] or '1') - 1 do
            doomed[#doomed + 1] = beat_key(pid, r)
            doomed[#doomed + 1] = own .. ':trace:' .. r
            doomed[#doomed + 1] = own .. ':rate:' .. r
        end
        delete(doomed)
    end
    redis.call('ZREM', K.procs, pid)
    redis.call('ZREM', K.ended, pid)
    redis.call('ZREM', K.submitting, pid)
    return rec[1] and tonumber(rec[2] or '1') * 3 + 10 or 0      -- the keys it named: the work done
end

-- A region's end: its result (JSON or ''), its slot back; the process ends
-- failed with a region that failed, finished with the last region.  The
-- caller then runs schedule() (defined after this prelude).
local function finish(pid, region, name, state, reason, result)
    local p = proc(pid)
    if result ~= '' then redis.call('HSET', private(pid) .. ':results', region, result) end
    redis.call('HSET', p, 'phase:' .. region, 'done')
    release(name, pid, region)
    local cur = redis.call('HGET', p, 'state')
    if cur and not ENDED[cur] then
        if state ~= 'finished' then
            end_process(pid, state, reason)
        elseif redis.call('HLEN', private(pid) .. ':results') >= tonumber(redis.call('HGET', p, 'nregions')) then
            mark_ended(pid, 'finished', reason)
        end
    end
end

-- Log lines onto a process's stream: engine, region, device, level, text
-- for each, from ARGV[first] on.
local function append_log(pid, cap, first)
    local stream = private(pid) .. ':log'
    for i = first, #ARGV, 5 do
        redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', 'engine', ARGV[i], 'region', ARGV[i + 1],
                   'device', ARGV[i + 2], 'level', ARGV[i + 3], 'text', ARGV[i + 4])
    end
end

local function fail_engine_jobs(name, reason)
    for _, job in ipairs(redis.call('SMEMBERS', engine(name) .. ':procs')) do
        end_process(string.match(job, '^(%d+):'), 'failed', reason)
    end
end

-- Regions that were claimed and whose worker stopped heartbeating (stopped,
-- hung in the kernel, its host cut off) fail their process.
local function reap_regions(name)
    local host, n = redis.call('HGET', engine(name), 'host') or '?', 0
    for _, job in ipairs(redis.call('SMEMBERS', engine(name) .. ':procs')) do
        local pid, region = string.match(job, '^(%d+):(%d+)$')
        if redis.call('HEXISTS', proc(pid) .. ':claims', region) == 1
                and redis.call('EXISTS', beat_key(pid, region)) == 0 then
            n = n + end_process(pid, 'failed', 'region ' .. region .. ' on engine ' .. name .. ' (' .. host ..
                                ') stopped responding (no heartbeat from its worker)')
        end
    end
    return n
end

-- why a client-side region (an application engine's, or a paused
-- process's debugger place) fails its process: never claimed, or silent
local function app_gone(pid, region)
    local claimed = redis.call('HEXISTS', proc(pid) .. ':claims', region) == 1
    local who = redis.call('HGET', proc(pid), 'debugger') == region and 'its debugger' or 'its application engine'
    if claimed then return 'region ' .. region .. ': ' .. who .. ' stopped responding (no heartbeat)' end
    if who == 'its debugger' then
        return 'no debugger attached within ' .. APP_START_MS / 1000 .. ' s of the start (pcli.debug(' .. pid
               .. '), or debug ' .. pid .. ' in the shell)'
    end
    return 'region ' .. region .. ': its application engine did not connect within ' .. APP_START_MS / 1000 .. ' s'
end

-- Regions in application engines whose engine never claimed them, or
-- stopped heartbeating, fail their process.
local function reap_apps()
    local n = 0
    for _, job in ipairs(redis.call('SMEMBERS', K.apps)) do
        local pid, region = string.match(job, '^(%d+):(%d+)$')
        if redis.call('EXISTS', beat_key(pid, region)) == 0 then
            n = n + end_process(pid, 'failed', app_gone(pid, region))
        end
    end
    return n
end

-- Processes whose client stopped submitting them (no word within its lease)
-- fail, `most` at a time; they were never queued, so they held nobody up.
local function reap_submissions(most)
    local t = tonumber(now())
    local late = redis.call('ZRANGEBYSCORE', K.submitting, '-inf', t, 'LIMIT', 0, most)
    for _, pid in ipairs(late) do
        local lease = redis.call('HGET', proc(pid), 'lease') or '?'
        end_process(pid, 'failed', 'its client stopped before the submission was complete (no word from it for '
                    .. lease .. ' s)')
        redis.call('ZREM', K.submitting, pid)
    end
    return #late
end

-- Ended processes older than ttl seconds (0: kept for ever), at most `most`
-- of them: purged.
local function expire_ended(ttl, most)
    if ttl <= 0 then return 0 end
    local old = redis.call('ZRANGEBYSCORE', K.ended, '-inf', tonumber(now()) - ttl, 'LIMIT', 0, most)
    for _, pid in ipairs(old) do purge_process(pid) end
    return #old
end

-- why user may not go on submitting process pid, or nil
local function not_submitting(user, pid)
    local rec = redis.call('HMGET', proc(pid), 'owner', 'state', 'reason')
    if not rec[1] then return 'no process ' .. pid end
    if rec[1] ~= user then return 'process ' .. pid .. ' belongs to ' .. rec[1] end
    if ENDED[rec[2]] then
        return 'process ' .. pid .. ' ' .. rec[2] .. ' before its submission was complete: ' .. (rec[3] or '')
    end
    if not redis.call('ZSCORE', K.submitting, pid) then return 'process ' .. pid .. ' was submitted already' end
    return nil
end

-- seconds since redis-server started: after a restart, heartbeats get a
-- grace period before anyone is reaped for missing them
local function uptime()
    return tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
end

-- A stall (Redis busy with a long command, or stopped) keeps everyone from
-- heartbeating, and heartbeats expire meanwhile: when no reap could run
-- for longer than STALL_MS, nothing is reaped for grace_ms after it, while
-- daemons, workers and clients beat again.
local STALL_MS = 2000
local function stalled(grace_ms)
    local t = tonumber(now()) * 1000
    local last = tonumber(redis.call('GET', K.reaped) or t)
    redis.call('SET', K.reaped, t)
    if t - last > STALL_MS then redis.call('SET', K.grace, t, 'PX', grace_ms) end
    return redis.call('EXISTS', K.grace) == 1
end

-- Whether Redis refused writes (its disk full: MISCONF, counted in INFO
-- errorstats) since the last reap, or within grace_ms of noticing it: no
-- heartbeat could be written meanwhile, so nobody is reaped for that.
local function writes_refused_lately(grace_ms)
    local count = string.match(redis.call('INFO', 'errorstats'), 'errorstat_MISCONF:count=(%d+)') or '0'
    local seen = redis.call('HMGET', K.refusals, 'count', 'at')
    if (seen[1] or '0') ~= count then
        redis.call('HSET', K.refusals, 'count', count, 'at', now())
        return true
    end
    return seen[2] ~= false and tonumber(now()) - tonumber(seen[2]) < grace_ms / 1000
end

-- Application engines (pcli.Engine): a user's client runs a region whose
-- rcon is '@app'.  It has no Redis rights on the process, so the
-- scheduler acts for it: each script serves one request of the process's
-- owner (ARGV[1] user, ARGV[2] request id, ARGV[3] pid, ARGV[4] region)
-- and answers it, or answers {error} when the region is not the user's to
-- run.

-- why user may not act for region of pid now, or nil
local function not_app_region(user, pid, region)
    local rec = redis.call('HMGET', proc(pid), 'owner', 'state')
    if not rec[1] then return 'no process ' .. pid end
    if rec[1] ~= user then return 'process ' .. pid .. ' belongs to ' .. rec[1] end
    if redis.call('HGET', proc(pid) .. ':regions', region) ~= APP then
        return 'region ' .. region .. ' of process ' .. pid .. ' is not run by an application engine'
    end
    if rec[2] ~= 'running' then return 'ended' end
    return nil
end

-- @script create
-- The scheduler makes a process for a user's submission (request ARGV[2]
-- of user ARGV[1], served once), before its client partitions and uploads
-- it: the pid exists at once, in phase ARGV[6] (partitioning | uploading).
-- ARGV: owner, request id, incarnation token, nregions, rcon (JSON
-- {region: engine}), phase, lease (s: the client's word must come within
-- it, or the process fails), then field, value, ...  Answers {pid, token},
-- or {error}: why the process can never run (nothing is kept).
if not take_request(ARGV[1], ARGV[2]) then return nil end
local refused = refusal(tonumber(ARGV[4]), cjson.decode(ARGV[5]))
if refused then return answer(ARGV[1], ARGV[2], {error = 'refused: ' .. refused}) end
local pid = redis.call('INCR', K.pid)
local p = proc(pid)
for i = 8, #ARGV, 2 do redis.call('HSET', p, ARGV[i], ARGV[i + 1]) end   -- first: they cannot override below
local t = now()
redis.call('HSET', p, 'pid', pid, 'owner', ARGV[1], 'state', 'waiting', 'reason', '',
           'nregions', ARGV[4], 'rcon', ARGV[5], 'created', t, 'phase', ARGV[6], 'lease', ARGV[7])
redis.call('SET', private(pid) .. ':token', ARGV[3])
redis.call('ZADD', K.procs, pid, pid)
redis.call('ZADD', K.submitting, tonumber(t) + tonumber(ARGV[7]), pid)
count_waiting(pid, 1)
event(pid, 'waiting', '')
return answer(ARGV[1], ARGV[2], {pid = pid, token = ARGV[3]})

-- @script prepare
-- The client of a process being submitted says how far it got, which
-- renews its lease.  ARGV: user, request id, pid, phase, then field, value,
-- ... (devices, edges: what the client knows).  Answers {done = 1} or {error}.
if not take_request(ARGV[1], ARGV[2]) then return nil end
local pid = ARGV[3]
local why = not_submitting(ARGV[1], pid)
if why then return answer(ARGV[1], ARGV[2], {error = why}) end
local p = proc(pid)
redis.call('ZADD', K.submitting, tonumber(now()) + tonumber(redis.call('HGET', p, 'lease')), pid)
redis.call('HSET', p, 'phase', ARGV[4])
for i = 5, #ARGV, 2 do redis.call('HSET', p, ARGV[i], ARGV[i + 1]) end
return answer(ARGV[1], ARGV[2], {done = 1})

-- @script submit
-- The client's uploads are in: the process made by create joins the queue.
-- KEYS: the uploads, renamed into the process under the names ARGV[4]
-- lists (space-separated: app first, then partition and instance when
-- given).  ARGV: user, request id, pid, names.  Answers {pid, token} or
-- {error} (the process ended meanwhile, say killed: the uploads are
-- dropped).  Returns the answer, or nil when the request was served already.
if not take_request(ARGV[1], ARGV[2]) then return nil end
local pid = ARGV[3]
local why = not_submitting(ARGV[1], pid)
if why then
    redis.call('DEL', unpack(KEYS))
    return answer(ARGV[1], ARGV[2], {error = why})
end
local p = proc(pid)
local i = 0
for name in string.gmatch(ARGV[4], '%S+') do
    i = i + 1
    redis.call('RENAME', KEYS[i], private(pid) .. ':' .. name)
end
redis.call('ZREM', K.submitting, pid)
redis.call('HDEL', p, 'phase', 'lease')
redis.call('HSET', p, 'submitted', now())
if redis.call('RPUSH', K.queue, pid) > DEPTH then     -- until a pass looks at it
    redis.call('HSET', p, 'reason', 'waiting: the scheduler looks at the first ' .. DEPTH .. ' in the queue')
end
schedule()
return answer(ARGV[1], ARGV[2], {pid = tonumber(pid), token = token_of(pid)})

-- @script refuse
-- The scheduler turns down a malformed request.  ARGV: user, request id, why.
if not take_request(ARGV[1], ARGV[2]) then return nil end
return answer(ARGV[1], ARGV[2], {error = ARGV[3]})

-- @script finish_region
-- ARGV: pid, region, engine, token, state (finished | failed | killed),
-- reason, result JSON or '', then field, value, ... for the process record
-- (the region's final progress: its counts are whole even when the
-- process ends before its next heartbeat).  Returns 0 for a stale worker
-- (refused).
if fenced(ARGV[1], ARGV[4], 'stale_writes') then return 0 end
for i = 8, #ARGV, 2 do redis.call('HSET', proc(ARGV[1]), ARGV[i], ARGV[i + 1]) end
finish(ARGV[1], ARGV[2], ARGV[3], ARGV[5], ARGV[6], ARGV[7])
schedule()
return 1

-- @script claim
-- A daemon takes a job it moved from its jobs list to its taken list.
-- ARGV: pid, region, token, engine, region ttl ms.  Returns 'ok', or why
-- the job is not to be run: 'stale' (another incarnation), 'ended',
-- 'elsewhere' (the region is not this engine's).  Either way the entry
-- leaves the taken list.
local pid, region = ARGV[1], ARGV[2]
local p = proc(pid)
redis.call('LREM', engine(ARGV[4]) .. ':taken', 1, pid .. ' ' .. region .. ' ' .. ARGV[3])
if fenced(pid, ARGV[3], 'stale_jobs') then return 'stale' end
if redis.call('HGET', p, 'state') ~= 'running' then return 'ended' end
if redis.call('HGET', p .. ':regions', region) ~= ARGV[4] then return 'elsewhere' end
redis.call('HSET', p .. ':claims', region, ARGV[4])
redis.call('SET', beat_key(pid, region), ARGV[4], 'PX', ARGV[5])
return 'ok'

-- @script region_beat
-- A region worker is alive.  ARGV: pid, region, token, engine, daemon id,
-- ttl ms, then field, value, ... for the process record (progress).
-- Returns {verdict, regions done}: verdict 'ok', 'ended' (stop now),
-- 'stale' (another incarnation) or 'orphan' (its daemon no longer holds
-- the engine: stopped, gone, or replaced).
local pid, region = ARGV[1], ARGV[2]
local p = proc(pid)
if fenced(pid, ARGV[3], 'stale_writes') then return {'stale', 0} end
if redis.call('HGET', p, 'state') ~= 'running' then return {'ended', 0} end
-- (a daemon could not heartbeat either while Redis refused writes: not orphaned for that)
if redis.call('GET', engine(ARGV[4]) .. ':alive') ~= ARGV[5]
        and not writes_refused_lately(2 * tonumber(ARGV[6])) then return {'orphan', 0} end
redis.call('SET', beat_key(pid, region), ARGV[4], 'PX', ARGV[6])
for i = 7, #ARGV, 2 do redis.call('HSET', p, ARGV[i], ARGV[i + 1]) end
return {'ok', redis.call('HLEN', private(pid) .. ':results')}

-- @script proc_set
-- ARGV: pid, token, then field, value, ...: set fields of a process's record
-- from one of its workers.
if fenced(ARGV[1], ARGV[2], 'stale_writes') then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', proc(ARGV[1]), ARGV[i], ARGV[i + 1]) end
return 1

-- @script log
-- ARGV: pid, token, cap, then engine, region, device, level, text for each line
if fenced(ARGV[1], ARGV[2], 'stale_writes') then return 0 end
append_log(ARGV[1], ARGV[3], 4)
return 1

-- @script trace
-- ARGV: pid, token, region, ttl (s), chunk: one more chunk of a region's
-- event trace, onto its list (keys.py proc_trace), which expires ttl seconds
-- after the last.
if fenced(ARGV[1], ARGV[2], 'stale_writes') then return 0 end
local key = private(ARGV[1]) .. ':trace:' .. ARGV[3]
redis.call('RPUSH', key, ARGV[5])
redis.call('EXPIRE', key, ARGV[4])
return 1

-- @script rate
-- ARGV: pid, token, region, 'append' or 'set', points: a region's
-- delivered count over time (keys.py proc_rate, psim/series.py's packed
-- points), appended to, or replaced when the region thinned them.
if fenced(ARGV[1], ARGV[2], 'stale_writes') then return 0 end
local key = private(ARGV[1]) .. ':rate:' .. ARGV[3]
if ARGV[4] == 'set' then redis.call('SET', key, ARGV[5]) else redis.call('APPEND', key, ARGV[5]) end
return 1

-- @script kill
-- The scheduler acts on a user's kill request (served once).  ARGV: user,
-- request id, pid, whether the user may kill others' processes (1 or 0:
-- broker/acl.py decides), why ('' or the client's words, for the reason).
-- Answers {outcome}: nosuch | notyours | killed | ended.
if not take_request(ARGV[1], ARGV[2]) then return nil end
local pid, user = ARGV[3], ARGV[1]
local owner = redis.call('HGET', proc(pid), 'owner')
local outcome = 'ended'
if not owner then
    outcome = 'nosuch'
elseif owner ~= user and ARGV[4] ~= '1' then
    outcome = 'notyours'
elseif end_process(pid, 'killed', 'killed by ' .. user .. ((ARGV[5] or '') ~= '' and ': ' .. ARGV[5] or '')) == 1 then
    schedule()
    outcome = 'killed'
end
return answer(user, ARGV[2], {outcome = outcome})

-- @script register
-- ARGV: name, host, kind, slots, daemon id, heartbeat ttl ms.  Returns 0 when
-- another live daemon holds the name.
local name, daemon = ARGV[1], ARGV[5]
local e = engine(name)
local holder = redis.call('GET', e .. ':alive')
if holder and holder ~= daemon then return 0 end
if redis.call('HGET', e, 'daemon') ~= daemon then
    fail_engine_jobs(name, 'engine ' .. name .. ' restarted while running it')
    redis.call('DEL', e, e .. ':procs', e .. ':jobs', e .. ':taken')
end
redis.call('HSET', e, 'name', name, 'host', ARGV[2], 'kind', ARGV[3], 'slots', ARGV[4],
           'used', redis.call('SCARD', e .. ':procs'), 'daemon', daemon, 'started', now(), 'beat', now())
redis.call('SADD', K.engines, name)
redis.call('SET', e .. ':alive', daemon, 'PX', ARGV[6])
remember_engine(name, ARGV[4])
schedule()
return 1

-- @script heartbeat
-- ARGV: name, daemon id, ttl ms, cpu %, memory used, memory total, and
-- optionally its workers' cpu % (of one core, summed) and resident memory.
-- Returns 0 when the engine must register again (e.g. Redis restarted).
local e = engine(ARGV[1])
if redis.call('HGET', e, 'daemon') ~= ARGV[2] or redis.call('SISMEMBER', K.engines, ARGV[1]) == 0 then
    return 0
end
redis.call('SET', e .. ':alive', ARGV[2], 'PX', ARGV[3])
redis.call('HSET', e, 'cpu', ARGV[4], 'mem', ARGV[5], 'mem_total', ARGV[6], 'beat', now())
if ARGV[8] then redis.call('HSET', e, 'workers_cpu', ARGV[7], 'workers_mem', ARGV[8]) end
return 1

-- @script reap
-- Engines whose heartbeat expired: their processes fail with a reason, the
-- engines are forgotten; then claimed regions whose worker stopped
-- heartbeating fail their process, and so do submissions whose client
-- went silent (ARGV[3] at most); ended processes older than ARGV[2] s (0:
-- none) are purged, ARGV[3] at most.  Nothing is reaped in the first ARGV[1] ms after Redis
-- (re)started, while daemons and workers find it again, nor after a stall
-- (stalled()), nor after it refused writes (a full disk) until ARGV[1] ms
-- after.  Returns how many engines were reaped.
if writes_refused_lately(tonumber(ARGV[1])) then return 0 end
expire_ended(tonumber(ARGV[2]), tonumber(ARGV[3]))
if stalled(tonumber(ARGV[1])) then return 0 end
reap_submissions(tonumber(ARGV[3]))
if uptime() * 1000 < tonumber(ARGV[1]) then return 0 end
local n, ended = 0, 0
for _, name in ipairs(redis.call('SMEMBERS', K.engines)) do
    local e = engine(name)
    if redis.call('EXISTS', e .. ':alive') == 0 then
        local host = redis.call('HGET', e, 'host') or '?'
        fail_engine_jobs(name, 'engine ' .. name .. ' on ' .. host .. ' stopped responding (heartbeat expired)')
        redis.call('DEL', e, e .. ':procs', e .. ':jobs', e .. ':taken')
        redis.call('SREM', K.engines, name)
        n = n + 1
    else
        ended = ended + reap_regions(name)
    end
end
ended = ended + reap_apps()
if n + ended > 0 then schedule() end
return n

-- @script unregister
-- ARGV: name, daemon id, reason for the processes it still runs
local name = ARGV[1]
local e = engine(name)
if redis.call('HGET', e, 'daemon') ~= ARGV[2] then return 0 end
fail_engine_jobs(name, ARGV[3])
redis.call('DEL', e, e .. ':procs', e .. ':jobs', e .. ':taken', e .. ':alive')
redis.call('SREM', K.engines, name)
schedule()
return 1

-- @script app_claim
-- ARGV: user, request id, pid, region, CURVE record, address, ttl ms.  The
-- engine publishes its data-plane address and key (as a region's worker
-- does) and starts heartbeating.  Answers {token} or {error}.
if not take_request(ARGV[1], ARGV[2]) then return nil end
local pid, region = ARGV[3], ARGV[4]
local why = not_app_region(ARGV[1], pid, region)
if not why and redis.call('HEXISTS', proc(pid) .. ':claims', region) == 1 then
    why = 'region ' .. region .. ' of process ' .. pid .. ' is claimed by another application engine'
end
if why then return answer(ARGV[1], ARGV[2], {error = why}) end
redis.call('HSET', proc(pid) .. ':claims', region, APP)
redis.call('HSET', private(pid) .. ':curve', region, ARGV[5])
redis.call('HSET', private(pid) .. ':endpoints', region, ARGV[6])
redis.call('SET', beat_key(pid, region), APP, 'PX', ARGV[7])
return answer(ARGV[1], ARGV[2], {token = token_of(pid)})

-- @script app_beat
-- ARGV: user, request id, pid, region, ttl ms, then field, value, ...
-- (progress).  Answers {verdict, done} as region_beat does.
if not take_request(ARGV[1], ARGV[2]) then return nil end
local pid, region = ARGV[3], ARGV[4]
local why = not_app_region(ARGV[1], pid, region)
if why == 'ended' then return answer(ARGV[1], ARGV[2], {verdict = 'ended', done = 0}) end
if why then return answer(ARGV[1], ARGV[2], {error = why}) end
redis.call('SET', beat_key(pid, region), APP, 'PX', ARGV[5])
for i = 6, #ARGV, 2 do
    if string.match(ARGV[i], '^%a+:' .. region .. '$') then redis.call('HSET', proc(pid), ARGV[i], ARGV[i + 1]) end
end
return answer(ARGV[1], ARGV[2], {verdict = 'ok', done = redis.call('HLEN', private(pid) .. ':results')})

-- @script app_finish
-- ARGV: user, request id, pid, region, state (finished | failed), reason,
-- result JSON or ''.  Answers {done = 1} or {error}.
if not take_request(ARGV[1], ARGV[2]) then return nil end
local pid, region = ARGV[3], ARGV[4]
local why = not_app_region(ARGV[1], pid, region)
if why == 'ended' then return answer(ARGV[1], ARGV[2], {done = 0}) end
if why then return answer(ARGV[1], ARGV[2], {error = why}) end
if ARGV[5] ~= 'finished' and ARGV[5] ~= 'failed' then
    return answer(ARGV[1], ARGV[2], {error = 'a region ends finished or failed'})
end
finish(pid, region, APP, ARGV[5], ARGV[6], ARGV[7])
schedule()
return answer(ARGV[1], ARGV[2], {done = 1})

-- @script app_log
-- ARGV: user, request id, pid, region, cap, then engine, region, device,
-- level, text for each line (as log)
if not take_request(ARGV[1], ARGV[2]) then return nil end
local why = not_app_region(ARGV[1], ARGV[3], ARGV[4])
if why and why ~= 'ended' then return answer(ARGV[1], ARGV[2], {error = why}) end
append_log(ARGV[3], ARGV[5], 6)
return answer(ARGV[1], ARGV[2], {done = 1})

-- @script purge
-- One page of a user's purge request (pd/scheduler.py pages it, then
-- answers it with `respond`): ended processes' records, results and logs
-- go.  ARGV: user, whether the user may purge others' processes (1 or 0:
-- broker/acl.py decides), budget (keys deleted, at most about: a page is
-- bounded work, whatever the request names), then pids.  Returns JSON
-- {done = how many pids were dealt with, purged = [pid, ...],
-- refused = {pid = nosuch | notyours | STATE}}.
local user, anyone, budget = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local purged, refused, spent, done = {}, {}, 0, 0
for i = 4, #ARGV do
    if spent >= budget then break end
    local pid = ARGV[i]
    local rec = redis.call('HMGET', proc(pid), 'owner', 'state')
    if not rec[1] then
        refused[pid] = 'nosuch'
    elseif rec[1] ~= user and not anyone then
        refused[pid] = 'notyours'
    elseif not ENDED[rec[2]] then
        refused[pid] = rec[2]
    else
        spent = spent + purge_process(pid)
        purged[#purged + 1] = tonumber(pid)
    end
    spent, done = spent + 1, done + 1
end
return cjson.encode({done = done, purged = purged, refused = refused})

-- @script purge_ended
-- One page of purging every ended process of a user (or everyone's, for
-- ARGV[2] = 'all': the scheduler checked the right) ended before ARGV[3]
-- (epoch s; '' for any time).  ARGV: user, whose, before, skip (how many
-- ended processes of others the pages before left in place), page (how
-- many to look at), budget (keys deleted, about).  Returns JSON
-- {skipped = left in place, purged = [pid, ...], last = whether it was the
-- last page}.
local user, all, page, budget = ARGV[1], ARGV[2] == 'all', tonumber(ARGV[5]), tonumber(ARGV[6])
local before = ARGV[3] == '' and '+inf' or '(' .. ARGV[3]
local purged, skipped, spent, seen = {}, 0, 0, 0
local ended = redis.call('ZRANGEBYSCORE', K.ended, '-inf', before, 'LIMIT', tonumber(ARGV[4]), page)
for _, pid in ipairs(ended) do
    if spent >= budget then break end
    seen = seen + 1
    if all or redis.call('HGET', proc(pid), 'owner') == user then
        spent = spent + purge_process(pid)
        purged[#purged + 1] = tonumber(pid)
    else
        skipped = skipped + 1
    end
    spent = spent + 1
end
return cjson.encode({skipped = skipped, purged = purged, last = seen == #ended and #ended < page})

-- @script respond
-- The scheduler answers a request it served in pages (purge): ARGV: user,
-- request id, the answer (JSON).  Returns nil when it was answered already.
if not take_request(ARGV[1], ARGV[2]) then return nil end
return post(ARGV[1], ARGV[2], ARGV[3])

-- @script index_ended
-- Ended processes recorded before pstack:ended was kept (an older pstack)
-- join it, so that purge and the results' expiry find them.  Each
-- scheduler runs it once, at its start, a page at a time: ARGV: the first
-- process's rank in pstack:procs, how many.  Returns how many joined.
local n = 0
for _, pid in ipairs(redis.call('ZRANGE', K.procs, ARGV[1], ARGV[1] + ARGV[2] - 1)) do
    local rec = redis.call('HMGET', proc(pid), 'state', 'ended')
    if ENDED[rec[1]] and not redis.call('ZSCORE', K.ended, pid) then
        redis.call('ZADD', K.ended, rec[2] or now(), pid)
        n = n + 1
    end
end
return n
