-- replay.lua -- wrk script for bench/run.sh's realistic load: replays a request table
-- written by bench/realistic.mjs, cycling through it.
--
--   wrk ... -s bench/replay.lua URL -- TABLE post|get [ORIGIN]
--
-- TABLE has one request per line: first field the beacon body (post) or the GET target
-- (get), then Cookie, User-Agent and X-Forwarded-For, tab-separated. Every request string
-- is built once, in init(), with wrk.format, so that request() costs the same small
-- lookup for both servers: the load generator's CPU does not differ between them.
local reqs, n, i = {}, 0, 0

function init(args)
  local file, mode, origin = args[1], args[2], args[3]
  for line in io.lines(file) do
    local first, cookie, ua, xff = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
    if first then
      local h = { ["Cookie"] = cookie, ["User-Agent"] = ua, ["X-Forwarded-For"] = xff }
      n = n + 1
      if mode == "post" then
        -- what navigator.sendBeacon sends, with the Origin a browser adds to a POST
        h["Content-Type"] = "text/plain"
        h["Origin"] = origin
        reqs[n] = wrk.format("POST", "/api/event", h, first)
      else
        reqs[n] = wrk.format("GET", first, h, nil)
      end
    end
  end
  if n == 0 then error("replay.lua: no requests in " .. tostring(file)) end
end

function request()
  i = i % n + 1
  return reqs[i]
end
