-- wrk script: POST /api/v1/reports, each request a new report (its own external_id), as a coordinator's terminal.
-- The run's tag comes from the environment (bench/http.py sets WANGGE_BENCH_TAG) so that runs never collide.
local tag = os.getenv("WANGGE_BENCH_TAG") or "wrk"
local counter = 0
local threads = {}
-- thread_id is a global of each thread's interpreter, set by setup() below

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"source":"terminal","external_id":"%s-%d-%d","category":"CM04","description":"压测：垃圾箱破损",' ..
    '"location":{"lon":117.575168,"lat":34.871845},"media":[],"observed_at":"2026-11-27T09:00:00+08:00"}',
    tag, thread_id, counter)
  return wrk.format("POST", "/api/v1/reports", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer demo-terminal-token",
  }, body)
end

done = function(summary, latency, requests)
  io.write(string.format("wrk: %d requests, %d errors (connect %d, read %d, write %d, status %d, timeout %d)\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
    summary.errors.timeout, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
  io.write(string.format("wrk-latency-ms p50 %.2f p90 %.2f p99 %.2f max %.2f\n", latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("wrk-rate %.1f\n", summary.requests / (summary.duration / 1e6)))
end
