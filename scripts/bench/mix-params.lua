-- wrk script: the 50/50 mix of ../shared/bench/concord.lua (same keys, values and RESULT line),
-- with separate query strings for reads and writes. concord.lua appends one QUERY to every path,
-- but GET accepts only r and timeout_ms and PUT only w, strict and timeout_ms (any other
-- parameter is a 400), so e.g. strict writes or R=W=1 cannot be expressed with it.
--   wrk -t1 -c21 -d20s --timeout 5s --latency -s mix-params.lua http://127.0.0.1:7710 \
--     -- NS KEYSPACE VALUE_BYTES READ_QUERY WRITE_QUERY
-- e.g. -- bench 100000 128 "" "?strict=true"     or     -- bench 100000 128 "?r=1" "?w=1"

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local ns, keyspace, vbytes, value, read_query, write_query, put_hdrs
function init(args)
  ns = args[1] or "bench"
  keyspace = tonumber(args[2] or "100000")
  vbytes = tonumber(args[3] or "128")
  read_query = args[4] or ""
  write_query = args[5] or ""
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  local t = {}
  for i = 1, vbytes do t[i] = string.char(math.random(33, 126)) end
  value = table.concat(t)
  put_hdrs = { ["Content-Type"] = "application/octet-stream" }
end

local function key_path(query)
  return string.format("/v1/kv/%s/key%09d%s", ns, math.random(0, keyspace - 1), query)
end

function request()
  if math.random() < 0.5 then
    return wrk.format("PUT", key_path(write_query), put_hdrs, value)
  end
  return wrk.format("GET", key_path(read_query))
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f requests=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
