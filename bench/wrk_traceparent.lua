-- wrk script: the serving benchmark's request with a W3C traceparent, as Locust sends it:
-- a new random trace per request, 1 % of them with the sampled flag.
wrk.method = "POST"
wrk.body = '{"island":"Biscoe","bill_length_mm":46.1,"bill_depth_mm":13.2,"flipper_length_mm":211,"body_mass_g":4500,"sex":"female"}'
wrk.headers["Content-Type"] = "application/json"

local function word()
  return string.format("%08x", math.random(1, 0x7fffffff))
end

request = function()
  local flags = math.random() < 0.01 and "01" or "00"
  wrk.headers["traceparent"] = "00-" .. word() .. word() .. word() .. word() .. "-"
    .. word() .. word() .. "-" .. flags
  return wrk.format()
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
