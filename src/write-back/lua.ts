/**
 * Lua scripts of the Redis write-back journal. Each runs atomically. Arguments arrive as one JSON
 * document (ARGV[1], decoded with cjson) and every number that matters travels as a string.
 * `APPLY` below must behave exactly like row-state.ts; the journal conformance suite checks it.
 */

const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%d', n) end
local function stamp_of(g, rg)
  return (redis.call('GET', g) or '0') .. '|' .. (redis.call('GET', rg) or '0')
end
local function copy(t) local c = {} for k, v in pairs(t) do c[k] = v end return c end
local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end
local function has_unknown(f)
  for k, v in pairs(f) do if v == 'u' and string.sub(k, 1, 2) == 'c:' then return true end end
  return false
end
-- A row entry, or nil when missing or stale without pending writes (then deleted); a stale or
-- dead-lettered row with pending writes is returned marked suspect.
local function loadrow(key, stamp)
  local f = hgetall(key)
  if f == nil then return nil end
  local n = tonumber(f.n or '0')
  if f.e ~= stamp or f.s == '1' or (n <= 0 and has_unknown(f)) then
    if n <= 0 then redis.call('DEL', key) return nil end
    return { f = f, suspect = true }
  end
  return { f = f }
end
-- absent: the key is known not to exist (nothing to clear first). Field k marks a row that holds
-- an unknown column when written, so the acknowledgement reads three fields, not the whole hash
-- (fills may clear the unknowns later: k then over-reports, and the acknowledgement checks).
local function writerow(key, f, ttl, absent)
  if not absent then redis.call('DEL', key) end
  f.k = nil
  local args = {}
  local unknown = false
  for k, v in pairs(f) do
    args[#args + 1] = k args[#args + 1] = v
    if v == 'u' and string.sub(k, 1, 2) == 'c:' then unknown = true end
  end
  if unknown then args[#args + 1] = 'k' args[#args + 1] = '1' end
  redis.call('HSET', key, unpack(args))
  if tonumber(f.n or '0') <= 0 then redis.call('PEXPIRE', key, ttl) end
end
local function cols(f, want)
  local c = {}
  for _, col in ipairs(want or {}) do c[col] = f['c:' .. col] end
  return { x = f.x, c = c }
end
local function want_missing(f, want)
  if not want or f.x ~= '1' then return false end
  for _, col in ipairs(want) do
    local v = f['c:' .. col]
    if v == nil or v == 'u' then return true end
  end
  return false
end
`;

const DECIMAL = `
local function dparse(s)
  local neg = false
  if string.sub(s, 1, 1) == '-' then neg = true s = string.sub(s, 2) end
  local i, f = string.match(s, '^(%d+)%.(%d+)$')
  if not i then i = string.match(s, '^(%d+)$') f = '' end
  if not i then return nil end
  return neg, i .. f, #f
end
local function dabs_add(a, b)
  local out, carry = {}, 0
  for i = #a, 1, -1 do
    local s = string.byte(a, i) + string.byte(b, i) - 96 + carry
    if s >= 10 then s = s - 10 carry = 1 else carry = 0 end
    out[i] = string.char(s + 48)
  end
  local r = table.concat(out)
  if carry == 1 then r = '1' .. r end
  return r
end
local function dabs_sub(a, b)
  local out, borrow = {}, 0
  for i = #a, 1, -1 do
    local s = string.byte(a, i) - string.byte(b, i) - borrow
    if s < 0 then s = s + 10 borrow = 1 else borrow = 0 end
    out[i] = string.char(s + 48)
  end
  return table.concat(out)
end
local function dadd(x, y)
  local xn, xd, xs = dparse(x)
  local yn, yd, ys = dparse(y)
  if xd == nil or yd == nil then return nil end
  local sc = math.max(xs, ys)
  xd = xd .. string.rep('0', sc - xs)
  yd = yd .. string.rep('0', sc - ys)
  local len = math.max(#xd, #yd)
  xd = string.rep('0', len - #xd) .. xd
  yd = string.rep('0', len - #yd) .. yd
  local neg, d
  if xn == yn then d = dabs_add(xd, yd) neg = xn
  elseif xd == yd then d = string.rep('0', len) neg = false
  elseif xd > yd then d = dabs_sub(xd, yd) neg = xn
  else d = dabs_sub(yd, xd) neg = yn end
  local ip = string.sub(d, 1, #d - sc)
  local fp = string.sub(d, #d - sc + 1)
  ip = string.gsub(ip, '^0+', '')
  if ip == '' then ip = '0' end
  local r = ip
  if sc > 0 then r = r .. '.' .. fp end
  if neg and string.find(r, '[1-9]') then r = '-' .. r end
  return r
end
local function dneg(s) if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end return '-' .. s end
local function dlt(a, b) return string.sub(dadd(a, dneg(b)), 1, 1) == '-' end
`;

// The twin of row-state.ts applyWrite.
const APPLY = `
local function clearcols(f)
  for k in pairs(f) do if string.sub(k, 1, 2) == 'c:' then f[k] = nil end end
end
local function setrow(f, vals)
  clearcols(f)
  for _, c in ipairs(vals or {}) do f['c:' .. c.c] = c.v end
  f.x = '1'
end
local function update(f, changes)
  local staged = {}
  for _, c in ipairs(changes or {}) do
    if c.k == 's' then staged[c.c] = c.v
    else
      local cur = staged[c.c]
      if cur == nil then cur = f['c:' .. c.c] end
      if cur == nil or cur == 'u' then return 'unknown' end
      if cur ~= 'n' then
        local sum = dadd(string.sub(cur, 2), c.v)
        if sum == nil then return 'value' end
        if c.lo and c.hi and (dlt(sum, c.lo) or dlt(c.hi, sum)) then return 'range' end
        staged[c.c] = 'v' .. sum
      end
    end
  end
  for col, v in pairs(staged) do f['c:' .. col] = v end
  return 'ok'
end
local function apply(f, w)
  local present = f.x == '1'
  if w.k == 'del' then
    if not present then return 'ok', 0 end
    clearcols(f) f.x = '0' return 'ok', 1
  elseif w.k == 'ins' then
    if present then return 'dup', 0 end
    setrow(f, w.v) return 'ok', 1
  elseif w.k == 'insn' then
    if present then return 'ok', 0 end
    setrow(f, w.v) return 'ok', 1
  elseif w.k == 'ups' then
    if not present then setrow(f, w.v) return 'ok', 1 end
    return update(f, w.s), 1
  end
  if not present then return 'ok', 0 end
  return update(f, w.s), 1
end
`;

/**
 * KEYS: stream, generation, row generation, dlq, request, rows..., forgotten requests...;
 * ARGV[1]: the append spec, ARGV[1 + i]: row i's payload (the stream entry, and the write itself
 * unless the spec's row carries it as `w`). A request key that exists holds the result of a run
 * already done.
 */
export const APPEND = `${PRELUDE}${DECIMAL}${APPLY}
-- One MGET: the request's earlier result, then both generation counters (the stamp).
local head = redis.call('MGET', KEYS[5], KEYS[2], KEYS[3])
if head[1] then return head[1] end
local spec = cjson.decode(ARGV[1])
local nrows = #spec.rows
if #KEYS >= 6 + nrows then redis.call('DEL', unpack(KEYS, 6 + nrows, #KEYS)) end
local stamp = (head[2] or '0') .. '|' .. (head[3] or '0')
-- Store time, read only when a base token is checked or issued (TIME is a call of its own).
local now = nil
local function clock() if now == nil then now = now_ms() end return now end
local base_ok = false
if spec.t0 then base_ok = spec.st == stamp and (clock() - tonumber(spec.t0)) < tonumber(spec.ttl) end
local want = spec.want
local states, order, dirty = {}, {}, {}
local need, susp, unk, bad = {}, {}, {}, {}
local badstatus = nil
local results, journal, pending = {}, {}, {}
for i, r in ipairs(spec.rows) do
  local key = KEYS[5 + i]
  -- The write travels once, as its payload, unless it carries delta bounds the payload leaves out.
  local w = r.w or cjson.decode(ARGV[1 + i])
  local h = states[key]
  if h == nil then
    h = loadrow(key, stamp)
    if h == nil then
      if w.k == 'ins' then h = { f = { x = '0' }, fresh = true }
      elseif r.b and base_ok then h = { f = copy(r.b), fresh = true } end
    end
    if h then states[key] = h order[#order + 1] = key if h.fresh then dirty[key] = true end end
  end
  if h == nil then need[#need + 1] = i
  elseif h.suspect then susp[#susp + 1] = i
  else
    local before = nil
    if want and w.k == 'del' then before = copy(h.f) end
    local status, count = apply(h.f, w)
    if status == 'unknown' then unk[#unk + 1] = i
    elseif status ~= 'ok' then bad[#bad + 1] = i badstatus = badstatus or status
    else
      local shown = before or h.f
      if count > 0 and want_missing(shown, want) then unk[#unk + 1] = i
      else
        local res = { c = count }
        if want and count > 0 then res.f = cols(shown, want) end
        results[i] = res
        if count > 0 then
          journal[#journal + 1] = ARGV[1 + i]
          pending[key] = (pending[key] or 0) + 1
          dirty[key] = true
        end
      end
    end
  end
end
if #need > 0 then return cjson.encode({ s = 'need', r = need, t0 = fmt(clock()), st = stamp }) end
if #susp > 0 then return cjson.encode({ s = 'suspect', r = susp }) end
if #unk > 0 then return cjson.encode({ s = 'unknown', r = unk }) end
if #bad > 0 then return cjson.encode({ s = badstatus, r = bad }) end
local len = redis.call('XLEN', KEYS[1])
if #journal > 0 and len >= tonumber(spec.m) then return cjson.encode({ s = 'full', len = fmt(len) }) end
for _, key in ipairs(order) do
  if dirty[key] then
    local f = states[key].f
    f.n = fmt(tonumber(f.n or '0') + (pending[key] or 0))
    f.e = stamp
    writerow(key, f, spec.ttl, states[key].fresh)
  end
end
local last = nil
for _, p in ipairs(journal) do last = redis.call('XADD', KEYS[1], '*', 'p', p) end
if spec.dlq then redis.call('XDEL', KEYS[4], spec.dlq) end
-- The store time of an append that journaled is its entry id's milliseconds (no TIME call).
local at = last and string.match(last, '^(%d+)') or fmt(clock())
local result = cjson.encode({ s = 'ok', r = results, len = fmt(len + #journal), now = at })
redis.call('SET', KEYS[5], result, 'PX', 3600000)
return result
`;

/** KEYS: generation, row generation, rows...; ARGV[1]: { want }. */
export const READ = `${PRELUDE}
local spec = cjson.decode(ARGV[1])
local now = now_ms()
local stamp = stamp_of(KEYS[1], KEYS[2])
local out = {}
for i = 3, #KEYS do
  local h = loadrow(KEYS[i], stamp)
  if h ~= nil and not h.suspect and want_missing(h.f, spec.want) and tonumber(h.f.n or '0') <= 0 then
    redis.call('DEL', KEYS[i])
    h = nil
  end
  if h == nil then out[#out + 1] = { k = 'm' }
  elseif h.suspect or want_missing(h.f, spec.want) then out[#out + 1] = { k = 'w' }
  else out[#out + 1] = { k = 'h', f = cols(h.f, spec.want) } end
end
return cjson.encode({ t0 = fmt(now), st = stamp, r = out })
`;

/** KEYS: generation, row generation, rows...; ARGV[1]: { t0, st, ttl, want, b: [fields] }. */
export const FILL = `${PRELUDE}
local spec = cjson.decode(ARGV[1])
local now = now_ms()
local stamp = stamp_of(KEYS[1], KEYS[2])
local ok = spec.st == stamp and (now - tonumber(spec.t0)) < tonumber(spec.ttl)
local out = {}
for i = 3, #KEYS do
  local h = loadrow(KEYS[i], stamp)
  if h ~= nil then
    if h.suspect or want_missing(h.f, spec.want) then out[#out + 1] = { k = 'w' }
    else out[#out + 1] = { k = 'h', f = cols(h.f, spec.want) } end
  elseif ok then
    local f = copy(spec.b[i - 2])
    f.n = '0'
    f.e = stamp
    writerow(KEYS[i], f, spec.ttl, true)
    out[#out + 1] = { k = 'h', f = cols(f, spec.want) }
  else out[#out + 1] = { k = 's' } end
end
return cjson.encode(out)
`;

/**
 * KEYS: stream, lease, epoch; ARGV[1]: { g, c, ttl, n }. Takes or renews the lease, then claims.
 * Replies with a JSON header and the entries as the stream listed them (the payloads are JSON
 * already: encoding them again would escape every quote).
 */
export const CLAIM = `${PRELUDE}
local spec = cjson.decode(ARGV[1])
local cur = redis.call('GET', KEYS[2])
local mine = spec.c .. '|'
local epoch
if not cur then
  epoch = redis.call('INCR', KEYS[3])
  redis.call('SET', KEYS[2], mine .. fmt(epoch), 'PX', spec.ttl)
elseif string.sub(cur, 1, #mine) == mine then
  epoch = tonumber(string.sub(cur, #mine + 1))
  redis.call('PEXPIRE', KEYS[2], spec.ttl)
else
  return { cjson.encode({ s = 'busy', o = cur }) }
end
redis.pcall('XGROUP', 'CREATE', KEYS[1], spec.g, '0', 'MKSTREAM')
local function valid(list)
  for _, e in ipairs(list) do if type(e) == 'table' and e[1] then return true end end
  return false
end
-- The entries go back as Redis listed them ([id, [field, value...]]), not copied into new tables.
local list = redis.call('XAUTOCLAIM', KEYS[1], spec.g, spec.c, 0, '0-0', 'COUNT', spec.n)[2]
if not valid(list) then
  local read = redis.call('XREADGROUP', 'GROUP', spec.g, spec.c, 'COUNT', spec.n, 'STREAMS', KEYS[1], '>')
  list = {}
  if read and read[1] then list = read[1][2] end
end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local oldest = ''
if first[1] then oldest = first[1][1] end
return { cjson.encode({ s = 'ok', ep = fmt(epoch), o = mine .. fmt(epoch),
  len = fmt(redis.call('XLEN', KEYS[1])), old = oldest, now = fmt(now_ms()) }), list }
`;

/** KEYS: lease; ARGV: owner, ttl. */
export const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
`;

/** KEYS: lease; ARGV: owner. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`;

/** KEYS: epoch; ARGV: at least. */
export const RAISE_EPOCH = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`;

const ID_COMPARE = `
local function idgt(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  return tonumber(as) > tonumber(bs)
end
`;

/**
 * KEYS: stream, applied, rows...; ARGV[1]: { g, id, ttl, lo, hi, e: [ids], r: [rowIndex per id],
 * f: [[rowIndex, column, field]] } with lo/hi the smallest and largest id of `e`.
 * Per batch, not per entry: one paged XPENDING finds which ids are still pending, one XACK and one
 * XDEL per chunk; per row, one HMGET and one HSET (plus PEXPIRE when nothing stays pending).
 */
export const ACK = `${PRELUDE}${ID_COMPARE}
local spec = cjson.decode(ARGV[1])
local ids, rix = spec.e, spec.r
local acked, dec, touched = {}, {}, {}
if #ids > 0 then
  local want = {}
  for _, id in ipairs(ids) do want[id] = true end
  local pending = {}
  local start, page = spec.lo, #ids + 64
  while true do
    local got = redis.call('XPENDING', KEYS[1], spec.g, start, spec.hi, page)
    for _, p in ipairs(got) do if want[p[1]] then pending[p[1]] = true end end
    if #got < page then break end
    start = '(' .. got[#got][1]
  end
  for i, id in ipairs(ids) do
    if pending[id] then
      pending[id] = nil -- an id listed twice counts once
      acked[#acked + 1] = id
      local key = KEYS[2 + rix[i]]
      if dec[key] == nil then touched[#touched + 1] = key dec[key] = 0 end
      dec[key] = dec[key] + 1
    end
  end
  -- unpack takes a few thousand values at most.
  for c = 1, #acked, 4000 do
    local last = math.min(c + 3999, #acked)
    redis.call('XACK', KEYS[1], spec.g, unpack(acked, c, last))
    redis.call('XDEL', KEYS[1], unpack(acked, c, last))
  end
end
if #spec.f > 0 then
  local byrow, order = {}, {}
  for _, fl in ipairs(spec.f) do
    local key = KEYS[2 + fl[1]]
    local l = byrow[key]
    if l == nil then l = {} byrow[key] = l order[#order + 1] = key end
    l[#l + 1] = fl
  end
  for _, key in ipairs(order) do
    local l = byrow[key]
    local names = {}
    for j, fl in ipairs(l) do names[j] = 'c:' .. fl[2] end
    local cur = redis.call('HMGET', key, unpack(names))
    local set, done = {}, {}
    for j, fl in ipairs(l) do
      -- The first fill of a column wins, as when each was checked and set on its own.
      if cur[j] == 'u' and not done[names[j]] then
        done[names[j]] = true
        set[#set + 1] = names[j]
        set[#set + 1] = fl[3]
      end
    end
    if #set > 0 then redis.call('HSET', key, unpack(set)) end
  end
end
for _, key in ipairs(touched) do
  -- The pending count, the dead-letter mark, the unknown-column mark, and x (every row has it).
  local h = redis.call('HMGET', key, 'n', 's', 'k', 'x')
  if h[1] or h[4] then
    local n = tonumber(h[1] or '0') - dec[key]
    if n > 0 then redis.call('HSET', key, 'n', fmt(n))
    elseif h[2] == '1' or (h[3] and has_unknown(hgetall(key))) then redis.call('DEL', key)
    else
      redis.call('HSET', key, 'n', '0')
      redis.call('PEXPIRE', key, spec.ttl)
    end
  end
end
local cur = redis.call('GET', KEYS[2])
if not cur or idgt(spec.id, cur) then redis.call('SET', KEYS[2], spec.id) end
-- Every id acknowledged (the usual case): the caller knows them, they need not travel back.
if #acked == #spec.e then return cjson.encode({ all = 1, now = fmt(now_ms()) }) end
return cjson.encode({ a = acked, now = fmt(now_ms()) })
`;

/** KEYS: stream, dlq, lease, rows...; ARGV[1]: { g, o, e: [[id, rowIndex, payload, error]] }. */
export const DEAD_LETTER = `${PRELUDE}
local spec = cjson.decode(ARGV[1])
if redis.call('GET', KEYS[3]) ~= spec.o then return -1 end
local moved = 0
local now = fmt(now_ms())
for _, e in ipairs(spec.e) do
  if redis.call('XACK', KEYS[1], spec.g, e[1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'id', e[1], 'p', e[3], 'err', e[4], 'at', now)
    redis.call('XDEL', KEYS[1], e[1])
    moved = moved + 1
    local key = KEYS[3 + tonumber(e[2])]
    if redis.call('EXISTS', key) == 1 then
      local n = redis.call('HINCRBY', key, 'n', -1)
      redis.call('HSET', key, 's', '1')
      if n <= 0 then redis.call('DEL', key) end
    end
  end
end
return moved
`;

/** KEYS: stream, dlq, applied, lease. */
export const STATUS = `${PRELUDE}
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local out = { len = fmt(redis.call('XLEN', KEYS[1])), dlq = fmt(redis.call('XLEN', KEYS[2])),
  applied = redis.call('GET', KEYS[3]) or '', lease = redis.call('GET', KEYS[4]) or '',
  old = '', new = '', now = fmt(now_ms()) }
if first[1] then out.old = first[1][1] end
if last[1] then out.new = last[1][1] end
return cjson.encode(out)
`;

/** KEYS: dlq; ARGV: start, count. */
export const DLQ_LIST = `
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])) do
  local f = { id = e[1] }
  local fields = e[2]
  for j = 1, #fields, 2 do f['f_' .. fields[j]] = fields[j + 1] end
  out[#out + 1] = f
end
if #out == 0 then return '[]' end
return cjson.encode(out)
`;
