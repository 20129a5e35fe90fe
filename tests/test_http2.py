"""HTTP/2 on the async and asgi workers (issue 14): ALPN ``h2`` over TLS and h2c prior
knowledge, with curl, httpx and hand-built frames (the ``h2`` package), each stream a WSGI
request or an ASGI scope (``http_version`` "2").

Where gunicorn 27 has the behaviour (its own HTTP/2, ``-k gthread`` and ``-k asgi``), the
same check runs against a live gunicorn in the same test.
"""

import asyncio
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from conftest import gunicorn_command, start_server, wait_for
from test_tls import certs, tls_args  # noqa: F401 - the module-scoped fixture

# Both workers that speak HTTP/2, each with its app (tests/apps/h2_asgi.py is h2_wsgi's
# ASGI twin: the same paths, the same answers).
APPS = {"async": "apps.h2_wsgi:app", "asgi": "apps.h2_asgi:app"}
BIG = bytes(range(256)) * 256 * 800
H2C = ["--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge"]
SERVERS = ["ferricorn", "gunicorn"]


def h2_protocol(which: str, worker: str) -> str:
    """What the app hears a stream's protocol is: SERVER_PROTOCOL, which issue 14 asks to
    be `HTTP/2` (RFC 9113's name) and gunicorn 27 makes `HTTP/2.0` (docs/differences.md);
    in ASGI `HTTP/` and the scope's `http_version`, "2" on both servers."""
    return "HTTP/2.0" if (which, worker) == ("gunicorn", "async") else "HTTP/2"


def protocol_said(worker: str, body: bytes | str) -> str:
    """The protocol the app said it saw: SERVER_PROTOCOL, or the scope's http_version."""
    said = json.loads(body)
    return said["protocol"] if worker == "async" else f"HTTP/{said['http_version']}"


def serve(which: str, worker: str, *extra: str, **kwargs):
    """ferricorn or gunicorn 27 (`-k gthread` for the WSGI app, `-k asgi`) on HTTP/2."""
    if which == "gunicorn":
        kind = "gthread" if worker == "async" else "asgi"
        return start_server(APPS[worker], "--no-control-socket", *extra, worker_class=kind,
                            command=gunicorn_command(), **kwargs)  # fmt: skip
    return start_server(APPS[worker], *extra, worker_class=worker, **kwargs)


def serve_on(worker: str, *extra: str, **kwargs):
    """ferricorn's `worker` serving its app; the async worker with 4 app threads."""
    threads = ("--threads", "4") if worker == "async" else ()
    return serve("ferricorn", worker, *extra, *threads, **kwargs)


def curl(*args: str, timeout: float = 60, input: bytes | None = None):
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], input=input,
                          capture_output=True, timeout=timeout + 5, check=True)  # fmt: skip


class RawClient:
    """One HTTP/2 connection by hand (prior knowledge), for resets and GOAWAY."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def get(self, path: str) -> int:
        stream = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(stream, headers, end_stream=True)
        self.flush()
        return stream

    def events(self, until, timeout: float = 10.0) -> list:
        """Reads until ``until(events)`` holds or the server closes; every event seen."""
        seen, deadline = [], time.monotonic() + timeout
        while not until(seen) and time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                break
            for event in self.conn.receive_data(data):
                seen.append(event)
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            self.flush()
        return seen


def of(kind, events):
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("worker", APPS)
@pytest.mark.parametrize("which", SERVERS)
def test_prior_knowledge_h2c_serves_each_stream_as_an_http2_request(which, worker):
    server = serve(which, worker, *H2C)
    want = h2_protocol(which, worker)
    try:
        url = f"http://127.0.0.1:{server.port}/env"
        out = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", url).stdout.decode()
        body, version = out.rsplit("\n", 1)
        assert version == "2", out
        assert protocol_said(worker, body) == want, body
        with httpx.Client(http1=False, http2=True) as client:
            response = client.get(url)
        assert response.http_version == "HTTP/2"
        assert protocol_said(worker, response.content) == want
        # A trusted peer that speaks HTTP/1.1 on a prior-knowledge-only port: 400.
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                               capture_output=True, timeout=30)  # fmt: skip
        assert plain.stdout == b"400", plain
    finally:
        server.stop()


@pytest.mark.parametrize("worker", APPS)
@pytest.mark.parametrize("which", SERVERS)
def test_tls_alpn_chooses_h2_and_falls_back_to_http11(which, worker, certs):  # noqa: F811
    server = serve(which, worker, "--http-protocols", "h2,h1", *tls_args(certs))
    try:
        url = f"https://localhost:{server.port}/env"
        resolve = f"localhost:{server.port}:127.0.0.1"
        common = [
            "--cacert",
            str(certs / "ca.pem"),
            "--resolve",
            resolve,
            "-w",
            "\n%{http_version}",
        ]
        body, version = curl("--http2", *common, url).stdout.decode().rsplit("\n", 1)
        assert (version, protocol_said(worker, body)) == ("2", h2_protocol(which, worker))
        assert json.loads(body)["scheme"] == "https"
        body, version = curl("--http1.1", *common, url).stdout.decode().rsplit("\n", 1)
        assert (version, protocol_said(worker, body)) == ("1.1", "HTTP/1.1")
    finally:
        server.stop()


UPGRADE = ["--http-protocols", "h2,h1", "--http2-cleartext", "upgrade"]


@pytest.mark.parametrize("worker", APPS)
@pytest.mark.parametrize("which", SERVERS)
def test_h2c_upgrade_makes_the_request_stream_one_of_an_http2_connection(which, worker):
    server = serve(which, worker, *UPGRADE)
    try:
        url = f"http://127.0.0.1:{server.port}"
        # curl --http2 on http:// asks with Upgrade: h2c; a second URL reuses the connection.
        out = curl("--http2", "-w", "\n%{http_version}\n", f"{url}/env", f"{url}/env")
        answers = out.stdout.decode().strip().split("\n")
        assert answers[1::2] == ["2", "2"], answers
        assert [protocol_said(worker, a) for a in answers[::2]] == [h2_protocol(which, worker)] * 2
        assert len({json.loads(a)["port"] for a in answers[::2]}) == 1, answers
        # A body fitting the first window comes along; a larger one stays on HTTP/1.1.
        for size, version in [(65_535, "2"), (70_000, "1.1")]:
            data = os.urandom(size)
            said = curl("--http2", "-w", "\n%{http_version}", "--data-binary", "@-",
                        f"{url}/upload", input=data)  # fmt: skip
            body, got = said.stdout.decode().rsplit("\n", 1)
            want = {"length": size, "sha256": hashlib.sha256(data).hexdigest()}
            assert (got, json.loads(body)) == (version, want), (size, said.stdout)
    finally:
        server.stop()


def raw_upgrade(port: int) -> bytes:
    """What a server answers a hand-written upgrade request, up to its first frame."""
    request = (b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 13:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize("which", SERVERS)
def test_h2c_upgrade_answers_101_then_settings_and_only_for_trusted_peers(which):
    server = serve(which, "async", *UPGRADE)
    untrusted = serve(which, "async", *UPGRADE, "--forwarded-allow-ips", "192.0.2.1")
    try:
        data = raw_upgrade(server.port)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols"), data
        assert b"upgrade: h2c" in head.lower(), data
        assert rest[3] == 4 and rest[4] == 0, rest[:9]  # a SETTINGS frame, not an ACK
        # A peer not in --forwarded-allow-ips is served HTTP/1.1.
        plain = raw_upgrade(untrusted.port)
        assert plain.startswith(b"HTTP/1.1 200"), plain
    finally:
        server.stop()
        untrusted.stop()


@pytest.mark.parametrize("worker", APPS)
def test_50mb_download_and_upload_by_sha256_over_h2c_and_tls(worker, certs, tmp_path):  # noqa: F811
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(50 * 1024 * 1024))
    want = hashlib.sha256(upload.read_bytes()).hexdigest()
    h2c = serve_on(worker, *H2C)
    tls = serve_on(worker, "--http-protocols", "h2,h1", *tls_args(certs))
    try:
        plain = f"http://127.0.0.1:{h2c.port}"
        got = curl("--http2-prior-knowledge", f"{plain}/big").stdout
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(BIG).hexdigest()
        said = curl("--http2-prior-knowledge", "--data-binary", f"@{upload}", f"{plain}/upload")
        assert json.loads(said.stdout) == {"length": upload.stat().st_size, "sha256": want}
        secure = f"https://localhost:{tls.port}"
        ca = ["--cacert", str(certs / "ca.pem"), "--resolve", f"localhost:{tls.port}:127.0.0.1"]
        got = curl("--http2", *ca, f"{secure}/big").stdout
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(BIG).hexdigest()
        said = curl("--http2", *ca, "-w", "\n%{http_version}", "--data-binary", f"@{upload}",
                    f"{secure}/upload").stdout.decode()  # fmt: skip
        body, version = said.rsplit("\n", 1)
        assert (version, json.loads(body)) == (
            "2",
            {"length": upload.stat().st_size, "sha256": want},
        )
        verify = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with httpx.Client(http2=True, verify=verify, timeout=60) as client:
            big = client.get(f"{secure}/big")
            assert big.http_version == "HTTP/2"
            assert hashlib.sha256(big.content).hexdigest() == hashlib.sha256(BIG).hexdigest()
            said = client.post(f"{secure}/upload", content=upload.read_bytes())
            assert said.json() == {"length": upload.stat().st_size, "sha256": want}
    finally:
        h2c.stop()
        tls.stop()


@pytest.mark.parametrize("worker", APPS)
def test_100_concurrent_streams_share_one_connection_and_run_side_by_side(worker):
    server = serve_on(worker, *H2C)
    url = f"http://127.0.0.1:{server.port}"

    async def hundred():
        async with httpx.AsyncClient(http1=False, http2=True, timeout=60) as client:
            slow = await asyncio.gather(*(client.get(f"{url}/slow") for _ in range(100)))
            env = await asyncio.gather(*(client.get(f"{url}/env") for _ in range(5)))
            return slow, env

    try:
        slow, env = asyncio.run(hundred())
        assert [r.status_code for r in slow] == [200] * 100
        assert {r.http_version for r in slow} == {"HTTP/2"}
        # The app (threads, or coroutines) ran streams of the one connection at once...
        assert max(r.json()["most"] for r in slow) > 1
        # ...and every request came on one TCP connection (one client port).
        assert len({r.json()["port"] for r in env}) == 1
    finally:
        server.stop()


@pytest.mark.parametrize("worker", APPS)
def test_rst_stream_closes_the_iterable_or_tells_the_asgi_app(worker, tmp_path):
    """WSGI: the iterable's close() runs; ASGI: the app hears http.disconnect."""
    closed = tmp_path / "closed"
    server = serve_on(worker, *H2C, env={**os.environ, "H2_CLOSED": str(closed)})
    try:
        client = RawClient(server.port)
        stream = client.get("/stream")
        client.events(lambda seen: of(h2.events.DataReceived, seen))
        client.conn.reset_stream(stream)
        client.flush()
        wait_for(closed.exists, 10, "close() or http.disconnect after RST_STREAM")
        # The connection goes on serving.
        again = client.get("/env")
        ended = client.events(
            lambda seen: any(e.stream_id == again for e in of(h2.events.StreamEnded, seen))
        )
        assert of(h2.events.StreamEnded, ended)
    finally:
        server.stop()


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream, payload) of each whole frame in ``data`` (RFC 9113 §4.1)."""
    out, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind, flags = data[at + 3], data[at + 4]
        stream = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
        out.append((kind, flags, stream, data[at + 9 : at + 9 + length]))
        at += 9 + length
    return out


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
@pytest.mark.parametrize("worker", APPS)
def test_graceful_stop_sends_goaway_and_lets_the_stream_in_flight_finish(worker, stop):
    """TERM stops the server; HUP replaces its workers: either way the old worker's
    connection gets GOAWAY and its stream in flight is answered."""
    server = serve_on(worker, *H2C)
    try:
        client = RawClient(server.port)
        stream = client.get("/slow")
        # /slow reaches the app before the stop: a stream opened after it is answered
        # first (the async worker needs a second app thread for it: --threads 4).
        first = client.get("/env")
        ended = h2.events.StreamEnded
        client.events(lambda seen: any(e.stream_id == first for e in of(ended, seen)))
        server.signal(stop)
        # Read to the close: GOAWAY comes first, then the stream's answer, then the end.
        data = b""
        while chunk := client.sock.recv(65536):
            data += chunk
        seen = frames(data)
        goaways = [int.from_bytes(p[4:8], "big") for k, _, _, p in seen if k == 7]
        assert goaways and set(goaways) == {0}, seen  # NO_ERROR
        # HEADERS (1) or DATA (0) with END_STREAM (0x1) on the stream in flight.
        assert any(k in (0, 1) and f & 1 and sid == stream for k, f, sid, _ in seen), seen
        if stop == signal.SIGTERM:
            assert server.wait_exit() == 0
        else:
            # The new workers serve HTTP/2 on a new connection.
            url = f"http://127.0.0.1:{server.port}/env"
            out = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", url).stdout
            assert out.decode().rsplit("\n", 1)[1] == "2", out
    finally:
        server.stop()


@pytest.mark.parametrize("worker", APPS)
def test_stop_closes_an_idle_http2_connection_whose_client_never_acks_the_goaway(worker):
    """Regression: a stopping worker kept an HTTP/2 connection whose client does not
    answer the GOAWAY's PING for the whole idle wait (5 s), and its exit with it; now
    1 s after its last stream (CLOSING_WAIT)."""
    server = serve_on(worker, *H2C)
    try:
        client = RawClient(server.port)
        first = client.get("/env")
        ended = h2.events.StreamEnded
        client.events(lambda seen: any(e.stream_id == first for e in of(ended, seen)))
        server.signal(signal.SIGTERM)
        began = time.monotonic()
        while client.sock.recv(65536):  # read, never feeding the PING to h2: no ACK
            pass
        assert time.monotonic() - began < 3.5
        assert server.wait_exit() == 0
    finally:
        server.stop()


def test_write_sends_at_once_on_an_http2_stream(tmp_path):
    """PEP 3333's write() under HTTP/2 goes out before the app returns (it used to wait
    for the return): the app writes, then waits for the client to have seen it."""
    flag = tmp_path / "seen"
    server = serve_on("async", *H2C, env={**os.environ, "H2_FLAG": str(flag)})
    try:
        client = RawClient(server.port)
        stream = client.get("/write")
        data = lambda seen: b"".join(e.data for e in of(h2.events.DataReceived, seen))  # noqa: E731
        first = client.events(lambda seen: data(seen) == b"first", timeout=5)
        assert data(first) == b"first", first
        flag.touch()
        rest = client.events(
            lambda seen: any(e.stream_id == stream for e in of(h2.events.StreamEnded, seen))
        )
        assert data(first + rest) == b"firstsecond"
    finally:
        server.stop()
