-- wrk script for benches/leak.py: each wrk thread stops after the number of responses given
-- as the script's argument (`wrk -s count.lua URL -- N`), so that a run sends a known number
-- of requests. wrk itself still waits out -d before it reports.
local limit = math.huge
local count = 0

function init(args)
  if args[1] then
    limit = tonumber(args[1])
  end
end

function response(status, headers, body)
  count = count + 1
  if count >= limit then
    wrk.thread:stop()
  end
end
