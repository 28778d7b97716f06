-- wrk script: the serving benchmark's request with a W3C traceparent, as Locust sends it:
-- a new random trace per request, 1 % of them with the sampled flag.

-- The request and the JSON report are wrk_post.lua's, found next to this file whatever
-- the working directory (wrk loads a script by the path it was given).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_post.lua")

local function word()
  return string.format("%08x", math.random(1, 0x7fffffff))
end

request = function()
  local flags = math.random() < 0.01 and "01" or "00"
  wrk.headers["traceparent"] = "00-" .. word() .. word() .. word() .. word() .. "-"
    .. word() .. word() .. "-" .. flags
  return wrk.format()
end
