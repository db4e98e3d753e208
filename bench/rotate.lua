-- wrk script: rotate GET requests over the URL paths listed in a file, and
-- print one machine-readable summary line from done().
--
--   wrk -t1 -c64 -d10s --timeout 10s -s rotate.lua http://127.0.0.1:PORT/ -- paths-info.txt
--
-- The paths file holds one absolute URL path per line (as written by
-- make_tree.py). Each wrk thread starts at a different offset so threads do
-- not walk the list in lock-step.
--
-- Output (one line, parsed by run.sh; times in microseconds):
--   BENCH requests=N bytes=N duration_us=N p50_us=N p90_us=N p99_us=N max_us=N
--         err_connect=N err_read=N err_write=N err_status=N err_timeout=N

local requests = {}
local index = 0
local threads = 0

-- Runs in the main Lua state once per thread, before init(): give each thread
-- a number so threads start at different offsets in the list.
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  local file = args[1]
  if file == nil then
    error("rotate.lua: pass the paths file after --, e.g. wrk ... URL -- paths-info.txt")
  end
  for line in io.lines(file) do
    if line ~= "" then
      -- Pre-format every request once; wrk then only copies bytes per request.
      requests[#requests + 1] = wrk.format("GET", line)
    end
  end
  if #requests == 0 then
    error("rotate.lua: no paths in " .. file)
  end
  -- `id` is set by setup() (0 for the first thread); the thread count is not
  -- known here, so offsets use a large prime stride instead of an even split.
  index = ((id or 0) * 7919) % #requests
end

function request()
  index = index + 1
  if index > #requests then
    index = 1
  end
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d bytes=%.0f duration_us=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.bytes, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
