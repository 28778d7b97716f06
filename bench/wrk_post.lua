-- wrk script of the serving benchmark: POST one penguin, report the run as JSON.
wrk.method = "POST"
wrk.body = '{"island":"Biscoe","bill_length_mm":46.1,"bill_depth_mm":13.2,"flipper_length_mm":211,"body_mass_g":4500,"sex":"female"}'
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
