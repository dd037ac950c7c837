-- wrk script: POST one JSON document on every request and count the answers by status, so that a
-- benchmark never reports throughput that was made of errors.
--
-- The body comes from the file named by BENCH_BODY_FILE: wrk hands its own arguments only to
-- init(), after the request has been built, and the environment reaches every thread's Lua state.

local path = os.getenv("BENCH_BODY_FILE")
if not path then
  error("set BENCH_BODY_FILE to the file whose bytes are POSTed")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

-- Per-thread counters. They live at the top level rather than in init() so that the default
-- init (which builds the request from wrk.method/body/headers) stays in place.
ok = 0
bad = 0
codes = {}

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

-- setup() and done() run in the main Lua state, which sees each thread only through thread:get.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total_ok, total_bad, total_codes = 0, 0, {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
    for status, n in pairs(thread:get("codes")) do
      total_codes[status] = (total_codes[status] or 0) + n
    end
  end
  -- One machine-readable line; the harness parses it next to wrk's own summary.
  local parts = {}
  for status, n in pairs(total_codes) do
    table.insert(parts, string.format("%d:%d", status, n))
  end
  io.write(string.format("bench-lua: ok=%d bad=%d codes=%s\n", total_ok, total_bad, table.concat(parts, ",")))
end
