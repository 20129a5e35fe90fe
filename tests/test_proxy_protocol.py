"""The PROXY protocol (`--proxy-protocol`, `--proxy-allow-from`) over raw sockets, side by
side with gunicorn 27 where it has the behaviour, and behind a real HAProxy.

A header is sent ahead of a request; ``apps.proxy_protocol_app`` answers with the environ's
``REMOTE_ADDR``, ``REMOTE_PORT`` and ``PROXY_*`` keys. Where gunicorn and ferricorn differ
on purpose (docs/differences.md, "The PROXY protocol") both answers are asserted, so the
doc stays true.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
from pathlib import Path

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    START_TIMEOUT,
    Client,
    connect,
    gunicorn_command,
    parse_response,
    read_until_close,
    running,
    send_pieces,
    wait_for,
)
from test_tls import certs as certs  # the fixture

APP = "apps.proxy_protocol_app:app"
ASGI_APP = "apps.proxy_protocol_app:asgi_app"
GUNICORN = gunicorn_command()
REQUEST = b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
KEEP = b"GET /keep HTTP/1.1\r\nHost: h\r\n\r\n"
HTTPS = b"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
V1 = b"PROXY TCP4 10.1.2.3 10.9.9.9 4321 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4321 443\r\n"
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
ADDRESSES_V4 = bytes([10, 1, 2, 3, 10, 9, 9, 9]) + struct.pack(">HH", 4321, 443)
ADDRESSES_V6 = (
    socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    + socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    + struct.pack(">HH", 54321, 80)
)


def v2(command: int, family: int, body: bytes) -> bytes:
    """A v2 header: the signature, version 2 and ``command``, ``family``, the body."""
    return SIGNATURE + bytes([0x20 | command, family]) + struct.pack(">H", len(body)) + body


TLVS = b"\x04\x00\x02ab" + b"\x05\x00\x00"  # two TLVs: NOOP with 2 bytes, UNIQUE_ID empty
LOCAL = v2(0, 0x00, b"")
# What an AWS NLB adds to a v2 header: TLV 0xEA, subtype 0x01, the VPC endpoint id.
VPCE = b"\x01vpce-08d2bf15fac5001c9"
NLB_TLV = b"\xea" + struct.pack(">H", len(VPCE)) + VPCE


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.fixture(scope="module")
def servers():
    """A server for (who, flags): ``gunicorn`` (gunicorn 27's sync worker), ``gthread``
    (gunicorn's), ``gunicorn-asgi`` (its ``-k asgi``, serving ``ASGI_APP``), or a ferricorn
    worker class (``asgi`` serves ``ASGI_APP``); one per distinct pair, started on first
    use."""
    with contextlib.ExitStack() as stack:
        started = {}

        def get(who: str, *flags: str):
            key = (who, flags)
            if key not in started:
                if who in ("asgi", "gunicorn-asgi"):
                    command = GUNICORN if who == "gunicorn-asgi" else None
                    cm = running(
                        ASGI_APP,
                        *flags,
                        "--no-control-socket",
                        worker_class="asgi",
                        command=command,
                    )
                elif who in ("gunicorn", "gthread"):
                    extra = ["-k", "gthread", "--threads", "2"] if who == "gthread" else []
                    cm = running(APP, *flags, "--no-control-socket", *extra, command=GUNICORN)
                else:
                    cm = running(APP, *flags, "--no-control-socket", worker_class=who)
                started[key] = stack.enter_context(cm)
            return started[key]

        yield get


def ask(server, pieces: list[bytes], pace: float = 0.0, source: str = "127.0.0.1"):
    """Sends ``pieces`` on one connection from ``source``; (status, environ doc, the
    client's own port). The doc's ``REMOTE_PORT`` reads ``client`` when it is that port."""
    sock = socket.socket()
    sock.settimeout(SOCKET_TIMEOUT)
    sock.bind((source, 0))
    sock.connect(server.address())
    with sock:
        send_pieces(sock, pieces, pace)
        raw, _ = read_until_close(sock)
        port = str(sock.getsockname()[1])
    response = parse_response(raw)
    assert response is not None, "closed without an answer"
    doc = json.loads(response.body) if response.status == 200 else None
    if doc and doc["REMOTE_PORT"] == port:
        doc["REMOTE_PORT"] = "client"
    return response.status, doc, port


# (name, pieces, pace): what each is sent; the same for gunicorn and both workers.
CASES = {
    "v1_tcp4": ([V1 + REQUEST], 0.0),
    "v1_tcp6": ([V1_TCP6 + REQUEST], 0.0),
    "v1_unknown": ([b"PROXY UNKNOWN\r\n" + REQUEST], 0.0),
    "v1_garbage": ([b"PROXY garbage\r\n" + REQUEST], 0.0),
    "v1_bad_port": ([b"PROXY TCP4 10.1.2.3 10.9.9.9 4321 65536\r\n" + REQUEST], 0.0),
    "v2_tcp4_with_tlvs": ([v2(1, 0x11, ADDRESSES_V4 + TLVS) + REQUEST], 0.0),
    "v2_tcp6": ([v2(1, 0x21, ADDRESSES_V6) + REQUEST], 0.0),
    "v2_aws_nlb": ([v2(1, 0x11, ADDRESSES_V4 + NLB_TLV) + REQUEST], 0.0),
    "no_header": ([REQUEST], 0.0),
    "split_over_many_writes": ([*bytewise(V1), REQUEST], 0.002),
    "v2_split_over_many_writes": ([*bytewise(v2(1, 0x11, ADDRESSES_V4)), REQUEST], 0.002),
    "https_from_the_proxy": ([V1 + HTTPS], 0.0),
}

# (flags, cases): the cases run with each set of flags.
RUNS = [
    (("--proxy-protocol",), list(CASES)),
    (("--proxy-protocol", "v1"), ["v1_tcp4", "v2_tcp6", "no_header", "split_over_many_writes"]),
    (("--proxy-protocol", "v2"), ["v1_tcp4", "v2_tcp4_with_tlvs", "v2_aws_nlb", "no_header"]),
    # A peer not allowed: 403 for anything that starts like a header, served without one.
    (
        ("--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8"),
        ["v1_tcp4", "v1_garbage", "v2_tcp6", "no_header"],
    ),
    # --forwarded-allow-ips judges the socket's peer (the proxy), not the header's client.
    (("--proxy-protocol", "--forwarded-allow-ips", "10.1.2.3"), ["https_from_the_proxy"]),
]


def _side_by_side():
    for flags, names in RUNS:
        for name in names:
            for worker_class in ("sync", "async"):
                yield pytest.param(
                    flags, name, worker_class, id=f"{worker_class}-{' '.join(flags)}-{name}"
                )


@pytest.mark.parametrize("flags, name, worker_class", list(_side_by_side()))
def test_side_by_side_with_gunicorn(servers, flags, name, worker_class):
    pieces, pace = CASES[name]
    want = ask(servers("gunicorn", *flags), pieces, pace)[:2]
    got = ask(servers(worker_class, *flags), pieces, pace)[:2]
    assert got == want


# Where gunicorn 27's ``-k asgi`` answers otherwise than its WSGI workers, ferricorn's asgi
# worker answers as the WSGI workers do (the same reader: docs/differences.md, "The asgi
# worker"); the value is gunicorn -k asgi's status.
NOT_ALLOWED = ("--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8")
ASGI_DIFFERS = {
    (("--proxy-protocol",), "v1_unknown"): 200,  # it serves `PROXY UNKNOWN` alone
    (("--proxy-protocol",), "v2_tcp6"): 200,  # with 2001:db8:0:0:0:0:0:1 as the client
    # It reads a header from a peer not allowed as a request: 400, not 403.
    (NOT_ALLOWED, "v1_tcp4"): 400,
    (NOT_ALLOWED, "v1_garbage"): 400,
    (NOT_ALLOWED, "v2_tcp6"): 400,
}
# The environ keys the ASGI scope has no place for.
PROXY_KEYS = ("PROXY_PROTOCOL", "PROXY_ADDR", "PROXY_PORT")


def _asgi_side_by_side():
    for flags, names in RUNS:
        for name in names:
            yield pytest.param(flags, name, id=f"asgi-{' '.join(flags)}-{name}")


def _scope_view(answer):
    """A WSGI answer as the ASGI app would give it: without the ``PROXY_*`` keys."""
    status, doc = answer
    return status, doc and {k: (None if k in PROXY_KEYS else v) for k, v in doc.items()}


@pytest.mark.parametrize("flags, name", list(_asgi_side_by_side()))
def test_asgi_side_by_side_with_gunicorn(servers, flags, name):
    pieces, pace = CASES[name]
    got = ask(servers("asgi", *flags), pieces, pace)[:2]
    theirs = ask(servers("gunicorn-asgi", *flags), pieces, pace)[:2]
    if (flags, name) not in ASGI_DIFFERS:
        assert got == theirs
        return
    assert got != theirs and theirs[0] == ASGI_DIFFERS[(flags, name)], theirs
    assert got == _scope_view(ask(servers("gunicorn", *flags), pieces, pace)[:2])


def header_clients(servers, who: str) -> list[str]:
    """``REMOTE_ADDR`` of two keep-alive requests after one v1 header, on ``who``."""
    with Client(servers(who, "--proxy-protocol").address()) as client:
        client.send(V1 + KEEP)
        first = client.read_response()
        client.send(KEEP)
        second = client.read_response()
    return [json.loads(r.body)["REMOTE_ADDR"] for r in (first, second)]


def test_asgi_keep_alive_keeps_the_header_client(servers):
    """Every request of a connection is the header's client's, on both ``-k asgi``."""
    assert header_clients(servers, "asgi") == ["10.1.2.3", "10.1.2.3"]
    assert header_clients(servers, "gunicorn-asgi") == ["10.1.2.3", "10.1.2.3"]


def test_asgi_access_log_and_a_unix_peer(server_factory, tmp_path):
    """``%(h)s`` is the header's client on both ``-k asgi``; a unix socket's peer may send
    a header whatever ``--proxy-allow-from`` says, as on the WSGI workers of both (gunicorn's
    ``-k asgi`` reads it as a request: 400, docs/differences.md)."""
    seen = {}
    for who in ("asgi", "gunicorn-asgi"):
        path = tmp_path / f"{who}.sock"
        command = GUNICORN if who == "gunicorn-asgi" else None
        flags = ("--proxy-protocol", "--proxy-allow-from", "127.0.0.1", "--access-logfile", "-")
        binds = ("127.0.0.1:0", f"unix:{path}")
        server = server_factory(ASGI_APP, *flags, binds=binds, worker_class="asgi", command=command)
        assert ask(server, [V1 + REQUEST])[0] == 200
        wait_for(lambda s=server: "/x" in s.stdout, SOCKET_TIMEOUT, "the access log line")
        with connect(str(path)) as sock:
            sock.sendall(V1.replace(b"10.1.2.3", b"10.4.5.6") + REQUEST)
            unix = parse_response(read_until_close(sock)[0])
        client = json.loads(unix.body)["REMOTE_ADDR"] if unix.status == 200 else unix.status
        seen[who] = (server.stdout.split(" ", 1)[0], client)
    assert seen["asgi"] == ("10.1.2.3", "10.4.5.6")
    assert seen["gunicorn-asgi"] == ("10.1.2.3", 400)


def test_asgi_a_stalled_header_cannot_hold_the_worker(server_factory):
    server = server_factory(
        ASGI_APP, "--proxy-protocol", "--read-timeout", "1", "--no-control-socket",
        worker_class="asgi",
    )  # fmt: skip
    with connect(server.address()) as stalled:
        stalled.sendall(V1[:15])
        status, doc, _ = ask(server, [V1 + REQUEST])
        assert (status, doc["REMOTE_ADDR"]) == (200, "10.1.2.3")
        assert read_until_close(stalled) == (b"", "eof")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_asgi_a_header_then_the_tls_handshake(server_factory, certs):  # noqa: F811
    """The header in plaintext, then the handshake (the bytes after the header are its
    first), as on the WSGI workers; a peer not allowed is closed without an answer.
    gunicorn's ``-k asgi`` hands the socket to asyncio's TLS first, so it cannot."""
    from test_tls import https_get, tls_args

    flags = (*tls_args(certs), "--proxy-protocol", "v1", "--no-control-socket")
    allowed = server_factory(ASGI_APP, *flags, worker_class="asgi")
    header = b"PROXY TCP4 192.0.2.7 127.0.0.1 4321 443\r\n"
    status, body, _ = https_get(allowed.port, certs, "/x", before=header)
    doc = json.loads(body)
    assert status == "HTTP/1.1 200 OK", body
    assert (doc["REMOTE_ADDR"], doc["wsgi.url_scheme"]) == ("192.0.2.7", "https")
    refused = server_factory(
        ASGI_APP, *flags, "--proxy-allow-from", "10.0.0.0/8", worker_class="asgi"
    )
    with connect(refused.address()) as raw:
        raw.sendall(header)
        assert read_until_close(raw) == (b"", "eof")


def test_the_header_is_the_client_and_a_request_without_one_is_the_socket(servers, worker_class):
    status, doc, _ = ask(servers(worker_class, "--proxy-protocol"), [V1 + REQUEST])
    assert status == 200
    assert doc == {
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_PORT": "4321",
        "PROXY_PROTOCOL": "TCP4",
        "PROXY_ADDR": "10.9.9.9",
        "PROXY_PORT": "443",
        "wsgi.url_scheme": "http",
        "path": "/x",
    }
    status, doc, _ = ask(servers(worker_class, "--proxy-protocol"), [REQUEST])
    assert (status, doc["REMOTE_ADDR"], doc["REMOTE_PORT"], doc["PROXY_PROTOCOL"]) == (
        200,
        "127.0.0.1",
        "client",
        None,
    )
    # --forwarded-allow-ips judges the socket's peer (127.0.0.1, trusted by default), not
    # the header's client, as gunicorn does (the side-by-side cases compare them).
    status, doc, _ = ask(servers(worker_class, "--proxy-protocol"), [V1 + HTTPS])
    assert doc["wsgi.url_scheme"] == "https"
    flags = ("--proxy-protocol", "--forwarded-allow-ips", "10.1.2.3")
    status, doc, _ = ask(servers(worker_class, *flags), [V1 + HTTPS])
    assert (doc["REMOTE_ADDR"], doc["wsgi.url_scheme"]) == ("10.1.2.3", "http")


def test_a_unix_socket_peer_is_always_allowed(server_factory, worker_class, tmp_path):
    """gunicorn: "Connections not associated with an IP address are treated as allowed"."""
    seen = {}
    for who in (worker_class, "gunicorn"):
        path = tmp_path / f"{who}.sock"
        command = GUNICORN if who == "gunicorn" else None
        kind = None if who == "gunicorn" else worker_class
        flags = ("--proxy-protocol", "--proxy-allow-from", "10.0.0.1", "--no-control-socket")
        server_factory(APP, *flags, binds=(f"unix:{path}",), worker_class=kind, command=command)
        with connect(str(path)) as sock:
            sock.sendall(V1 + REQUEST)
            raw, _ = read_until_close(sock)
        response = parse_response(raw)
        seen[who] = (response.status, json.loads(response.body)["REMOTE_ADDR"])
    assert seen[worker_class] == seen["gunicorn"] == (200, "10.1.2.3")


def test_the_access_log_names_the_header_client(server_factory, worker_class):
    """``%(h)s`` is the environ's REMOTE_ADDR, as in gunicorn: the header's client."""
    lines = {}
    for who in (worker_class, "gunicorn"):
        command = GUNICORN if who == "gunicorn" else None
        kind = None if who == "gunicorn" else worker_class
        flags = ("--proxy-protocol", "--access-logfile", "-", "--no-control-socket")
        server = server_factory(APP, *flags, worker_class=kind, command=command)
        assert ask(server, [V1 + REQUEST])[0] == 200
        wait_for(lambda s=server: "/x" in s.stdout, SOCKET_TIMEOUT, "the access log line")
        lines[who] = server.stdout.split(" ", 1)[0]
    assert lines[worker_class] == lines["gunicorn"] == "10.1.2.3"


def test_local_keeps_the_socket_peer(servers, worker_class):
    status, doc, _ = ask(servers(worker_class, "--proxy-protocol", "v2"), [LOCAL + REQUEST])
    assert status == 200
    assert (doc["REMOTE_ADDR"], doc["REMOTE_PORT"]) == ("127.0.0.1", "client")
    assert (doc["PROXY_PROTOCOL"], doc["PROXY_ADDR"], doc["PROXY_PORT"]) == ("LOCAL", None, None)
    # docs/differences.md: gunicorn puts None (not a string) in REMOTE_ADDR.
    _, gunicorn_doc, _ = ask(servers("gunicorn", "--proxy-protocol", "v2"), [LOCAL + REQUEST])
    assert (gunicorn_doc["REMOTE_ADDR"], gunicorn_doc["PROXY_PROTOCOL"]) == (None, "LOCAL")


@pytest.mark.parametrize(
    "header, gunicorn_status",
    [
        (v2(1, 0x31, ADDRESSES_V4), 500),  # an unknown family
        (v2(1, 0x11, ADDRESSES_V4[:8]), 500),  # addresses cut short
        (v2(1, 0x11, ADDRESSES_V4 + b"\x04\x00\x09ab"), 200),  # a TLV past the header
    ],
    ids=["family", "short", "tlv"],
)
def test_a_bad_v2_header_is_400(servers, worker_class, header, gunicorn_status):
    assert ask(servers(worker_class, "--proxy-protocol"), [header + REQUEST])[0] == 400
    # docs/differences.md: gunicorn answers 500 (or does not read the TLVs at all).
    assert ask(servers("gunicorn", "--proxy-protocol"), [header + REQUEST])[0] == gunicorn_status


def test_keep_alive_keeps_the_header_client(servers):
    """Every request of a connection is the header's client's (the async worker; the sync
    one answers one request per connection). gunicorn's gthread worker forgets it after the
    first request: docs/differences.md."""
    assert header_clients(servers, "async") == ["10.1.2.3", "10.1.2.3"]
    assert header_clients(servers, "gthread") == ["10.1.2.3", "127.0.0.1"]


def test_a_stalled_header_cannot_hold_a_worker(server_factory, worker_class):
    """A client that sends half a header and stops is closed after --read-timeout, without
    an answer; the one worker serves the next client meanwhile or right after."""
    server = server_factory(
        APP, "--proxy-protocol", "--read-timeout", "1", "--workers", "1", worker_class=worker_class
    )
    with connect(server.address()) as stalled:
        stalled.sendall(V1[:15])
        status, doc, _ = ask(server, [V1 + REQUEST])
        assert (status, doc["REMOTE_ADDR"]) == (200, "10.1.2.3")
        assert read_until_close(stalled) == (b"", "eof")


def test_regression_a_fin_behind_the_header_was_missed(server_factory):
    """The async worker reads a header on an edge that may also carry the client's FIN;
    the connection it then makes must know of the FIN (no later edge says it), or, with
    more than one read of bytes behind the header, it waited out --keep-alive instead of
    closing once its response was sent. The worker is stopped while the whole exchange
    and the FIN land in its socket, so they arrive on one edge."""
    server = server_factory(APP, "--proxy-protocol", "--keep-alive", "60", worker_class="async")
    (worker,) = server.worker_pids()
    # More than one read (64 KiB) behind the header, less than a socket takes unread.
    body = b"b" * 90_000
    head = b"POST /fin HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
    os.kill(worker, signal.SIGSTOP)
    try:
        sock = connect(server.address())
        sock.sendall(V1 + head + body)
        sock.shutdown(socket.SHUT_WR)
        unsent = lambda: fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0\0\0\0")  # noqa: E731
        wait_for(lambda: unsent() == b"\0\0\0\0", SOCKET_TIMEOUT, "the bytes to land")
    finally:
        os.kill(worker, signal.SIGCONT)
    with sock:
        raw, _ = read_until_close(sock)
    response = parse_response(raw)
    assert (response.status, json.loads(response.body)["REMOTE_ADDR"]) == (200, "10.1.2.3")


# --- behind a real HAProxy --------------------------------------------------------------------


def _haproxy_binary() -> str | None:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None and os.environ.get("CI"):
        pytest.fail("CI must have haproxy (the Makefile installs it with apt-get)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def haproxy(backend_port: int, send: str):
    """HAProxy in TCP mode on a free port, forwarding to ``backend_port`` with ``send``
    (``send-proxy`` or ``send-proxy-v2``, the latter with two TLVs: CRC32C and a unique id)."""
    binary = _haproxy_binary()
    if binary is None:
        pytest.skip("the haproxy binary is absent (Debian: apt-get install -y haproxy)")
    port = _free_port()
    options = " proxy-v2-options crc32c,unique-id" if send == "send-proxy-v2" else ""
    config = (
        "global\n  nbthread 1\n"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
        "  timeout server 30s\n"
        f"frontend www\n  bind 127.0.0.1:{port}\n  unique-id-format %ci:%cp\n"
        "  default_backend app\n"
        f"backend app\n  server web 127.0.0.1:{backend_port} {send}{options}\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "haproxy.cfg"
        path.write_text(config)
        check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        proc = subprocess.Popen(
            [binary, "-db", "-f", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:

            def listening() -> bool:
                assert proc.poll() is None, proc.stderr.read().decode()
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    return True
                return False

            wait_for(listening, START_TIMEOUT, "haproxy to listen")
            yield ("127.0.0.1", port)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class _Front:
    """What ``ask`` needs of a server: its address."""

    def __init__(self, address):
        self._address = address

    def address(self):
        return self._address


@pytest.fixture(params=["sync", "async", "asgi"])
def any_worker(request) -> str:
    """The WSGI workers and the asgi one (which serves ``ASGI_APP``)."""
    return request.param


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_behind_haproxy_the_app_sees_the_client(servers, any_worker, send):
    """The client connects from 127.0.0.2 (HAProxy to ferricorn from 127.0.0.1): the app's
    REMOTE_ADDR and REMOTE_PORT are the client socket's own address and port."""
    worker_class = any_worker
    server = servers(worker_class, "--proxy-protocol")
    with haproxy(server.port, send) as front:
        status, doc, port = ask(_Front(front), [REQUEST], source="127.0.0.2")
        assert status == 200
        assert (doc["REMOTE_ADDR"], doc["REMOTE_PORT"]) == ("127.0.0.2", "client"), (port, doc)
        if worker_class != "asgi":  # the scope has no PROXY_* keys
            assert doc["PROXY_PROTOCOL"] == "TCP4"
            assert (doc["PROXY_ADDR"], doc["PROXY_PORT"]) == (front[0], str(front[1]))
        if worker_class != "sync":  # keep-alive: each request is the client's
            with Client(front) as client:
                own_port = str(client.sock.getsockname()[1])
                for _ in range(2):
                    client.send(KEEP)
                    keep = json.loads(client.read_response().body)
                    assert keep["REMOTE_PORT"] == own_port, keep


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_behind_haproxy_a_peer_not_allowed_is_refused(servers, any_worker, send):
    server = servers(any_worker, "--proxy-protocol", "--proxy-allow-from", "10.9.9.9")
    with haproxy(server.port, send) as front:
        assert ask(_Front(front), [REQUEST], source="127.0.0.2")[0] == 403
