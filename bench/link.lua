-- wrk script: POST a patient to the URL with a different appointment id in every request.
-- Arguments after `--`: ids_file token threads mode
--   ids_file  one 24-hex appointment id per line; thread i uses only the i-th of `threads` equal slices,
--             so ids never repeat across threads
--   mode      "fresh": every id once (running out is counted as `exhausted`, then the slice starts over);
--             "cycle": go round the slice for as long as the run lasts (for already-linked ids)
-- done() prints one line `BENCH_RESULT {json}` with latency percentiles (microseconds) and the status counts.

local created = 0
local threads = {}

local BODY = '{"appointment_id":"%s","firstName":"Jane","lastName":"Smith","dateOfBirth":"1990-03-20",'
  .. '"address":{"street":"456 Oak St","city":"Boston","state":"MA","zipCode":"02101"},'
  .. '"insurance":{"provider":"Aetna","policyNumber":"AET789012"},'
  .. '"medicalHistory":"No significant medical history","currentMedications":"Multivitamin daily",'
  .. '"contact":{"phone":"+1234567892","email":"jane.smith@example.com"}}'

function setup(thread)
  thread:set("index", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(args)
  local path, token, count, run_mode = args[1], args[2], tonumber(args[3]), args[4]
  local all = {}
  for line in io.lines(path) do
    if #line > 0 then all[#all + 1] = line end
  end
  local per = math.floor(#all / count)
  if per < 1 then error("fewer ids than wrk threads in " .. path) end
  ids = {}
  for i = index * per + 1, (index + 1) * per do ids[#ids + 1] = all[i] end
  mode = run_mode
  position = 0
  exhausted = 0
  statuses = {}
  headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

function request()
  position = position + 1
  if position > #ids then
    if mode == "fresh" then exhausted = exhausted + 1 end
    position = 1
  end
  return wrk.format("POST", nil, headers, string.format(BODY, ids[position]))
end

function response(status, response_headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local counts, ran_out = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do counts[status] = (counts[status] or 0) + n end
    ran_out = ran_out + thread:get("exhausted")
  end
  local parts = {}
  for status, n in pairs(counts) do parts[#parts + 1] = string.format('"%s":%d', status, n) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f,"statuses":{%s},"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
      .. '"non_2xx_3xx":%d,"exhausted":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, table.concat(parts, ","), e.connect, e.read, e.write, e.timeout, e.status, ran_out))
end
