-- Shared by every scenario script: the data file the harness writes, the requests, and the
-- report. A scenario script requires this module and defines `request()` from its builders.
--
-- Data file (one item a line, written by bench/scenarios.py):
--   token <user> <jwt>           a Bearer token per seeded user (small, large, writer)
--   path <name> <user> <path>    a list request: its path and query, and whose token it takes
--   id <uuid>                    ids of the big user's tasks, for get, patch and toggle
local common = {}

local threads = {}

-- wrk runs this file once in its main Lua state (setup, done) and once per thread (init,
-- request, response). Globals of a thread's state are read back with thread:get().
non_2xx = 0
first_bad = ""

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function response(status, headers, body)
  -- wrk itself counts only statuses above 399; a 3xx or 1xx would also mean a broken scenario.
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
    if first_bad == "" then
      local excerpt = (body or ""):sub(1, 160):gsub("%c", " "):gsub('["\\]', "'")
      first_bad = status .. " " .. excerpt
    end
  end
end

function done(summary, latency, requests)
  local bad, first = 0, ""
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non_2xx")
    local thread_first = thread:get("first_bad")
    if first == "" and thread_first ~= nil then
      first = thread_first
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,' ..
      '"non_2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"first_bad":"%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, errors.connect, errors.read, errors.write, errors.timeout, first))
end

function common.load(path)
  local data = { tokens = {}, paths = {}, ids = {} }
  for line in io.lines(path) do
    local kind, rest = line:match("^(%S+) (.+)$")
    if kind == "token" then
      local user, token = rest:match("^(%S+) (%S+)$")
      data.tokens[user] = token
    elseif kind == "path" then
      local name, user, list_path = rest:match("^(%S+) (%S+) (%S+)$")
      data.paths[name] = { user = user, path = list_path }
    elseif kind == "id" then
      table.insert(data.ids, rest)
    end
  end
  assert(#data.ids > 0, "no task ids in " .. path)
  return data
end

-- Every thread gets its own sequence, the same one from run to run (thread_number is set by
-- setup() before init runs).
function common.seed_random()
  math.randomseed(7919 * (thread_number or 1))
end

local function headers(token, with_body)
  local result = { ["Authorization"] = "Bearer " .. token }
  if with_body then
    result["Content-Type"] = "application/json"
  end
  return result
end

local function random_id(data)
  return data.ids[math.random(#data.ids)]
end

local counter = 0

local function next_number()
  counter = counter + 1
  return (thread_number or 1) .. "-" .. counter
end

-- A list request never varies, so it is formatted once.
function common.list_request(data, name)
  local entry = assert(data.paths[name], "no path " .. name)
  local text = wrk.format("GET", entry.path, headers(data.tokens[entry.user]))
  return function() return text end
end

function common.get_request(data)
  local auth = headers(data.tokens.large)
  return function()
    return wrk.format("GET", "/api/tasks/" .. random_id(data), auth)
  end
end

function common.create_request(data)
  local auth = headers(data.tokens.writer, true)
  return function()
    local body = '{"title":"Benchmark task ' .. next_number() .. '","priority":"high",' ..
      '"due_date":"2027-03-01","description":"Created by the benchmark"}'
    return wrk.format("POST", "/api/tasks", auth, body)
  end
end

local priorities = { "low", "medium", "high" }

function common.patch_request(data)
  local auth = headers(data.tokens.large, true)
  return function()
    local body = '{"title":"Patched ' .. next_number() .. '","priority":"' ..
      priorities[math.random(3)] .. '"}'
    return wrk.format("PATCH", "/api/tasks/" .. random_id(data), auth, body)
  end
end

function common.toggle_request(data)
  local auth = headers(data.tokens.large)
  return function()
    return wrk.format("PATCH", "/api/tasks/" .. random_id(data) .. "/complete", auth)
  end
end

return common
