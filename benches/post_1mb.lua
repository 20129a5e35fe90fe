-- wrk script for the `echo` scenario of benches/load.py: every request is a POST with a
-- 1 MiB body (wrk.format adds the Content-Length), sent on keep-alive connections.
wrk.method = "POST"
wrk.body = string.rep("x", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
