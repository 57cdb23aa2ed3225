-- wrk script: writes every key key%09d of the keyspace exactly once (each thread takes a stride),
-- so a get benchmark finds every key. Stop it once done() reports all written.
--   wrk -t2 -c64 -d30s -s prefill.lua http://127.0.0.1:7700 -- NS KEYSPACE VALUE_BYTES
local counter, threads = 0, {}
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
local ns, keyspace, value, next_key, stride
function init(args)
  ns = args[1] or "bench"
  keyspace = tonumber(args[2] or "100000")
  value = string.rep("v", tonumber(args[3] or "128"))
  next_key, stride = tid - 1, 2
end
function request()
  if next_key >= keyspace then
    return wrk.format("GET", "/health")
  end
  local path = string.format("/v1/kv/%s/key%09d", ns, next_key)
  next_key = next_key + stride
  return wrk.format("PUT", path, { ["Content-Type"] = "application/octet-stream" }, value)
end
