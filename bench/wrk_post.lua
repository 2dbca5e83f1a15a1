-- wrk script of bench/loadgen_vs_wrk.sh: POSTs one JSON body, read from the file named after
-- `--` (`akidb-embed loadgen --print-body` writes the body loadgen sends), to the URL given to
-- wrk, and prints one JSON line of totals at the end, so that the script need not parse wrk's
-- text report:
--   wrk -t 2 -c 64 -d 10 -s bench/wrk_post.lua http://127.0.0.1:8080/embed -- body.json
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- Runs in every wrk thread before its first request; wrk builds the request after it.
function init(args)
    local f = assert(io.open(assert(args[1], "give the body file after --"), "rb"))
    wrk.body = f:read("*a"):gsub("%s+$", "")
    f:close()
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format('{"requests": %d, "duration_s": %.6f, "errors_connect": %d, "errors_read": %d, ' ..
        '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
        '"max_ms": %.3f}\n', summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status,
        e.timeout, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
