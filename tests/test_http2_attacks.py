"""The HTTP/2 attacks of issue 14, each on one hand-built connection to a worker: the
attacking connection must end (GOAWAY, or a close) and the same worker must go on serving
a fresh connection. Bounded in frames and seconds."""

import json
import socket
import struct
import subprocess

import hpack
import pytest
from conftest import start_server

APPS = {"async": "apps.h2_wsgi:app", "asgi": "apps.h2_asgi:app"}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, END_HEADERS = 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0, 1, 9, 11
#: :method GET, :scheme http, :path / (RFC 7541 appendix A: indexes 2, 6, 4) and
#: :authority "a" as a literal without indexing (index 1).
GET = bytes([0x82, 0x86, 0x84, 0x01, 0x01]) + b"a"


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def rapid_reset() -> bytes:
    """CVE-2023-44487: HEADERS then RST_STREAM(CANCEL), 20,000 streams."""
    out = bytearray()
    for i in range(20_000):
        out += frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, GET)
        out += frame(RST, 0, 2 * i + 1, struct.pack(">I", 8))
    return bytes(out)


def continuation_flood() -> bytes:
    """A header block that never ends: CONTINUATION frames of 16 KiB (64 MiB at most)."""
    junk = bytes([0x00, 0x05]) + b"x-aaa" + bytes([0x7F, 0x81, 0x7F]) + b"b" * 254
    chunk = (junk * (16384 // len(junk) + 1))[:16384]
    return frame(HEADERS, 0, 1, GET) + frame(CONTINUATION, 0, 1, chunk) * 4096


def empty_continuation_flood() -> bytes:
    """The same with 200,000 empty CONTINUATION frames: only a frame count stops it."""
    return frame(HEADERS, 0, 1, GET) + frame(CONTINUATION, 0, 1) * 200_000


def hpack_bomb() -> bytes:
    """One 4 KiB header into the dynamic table, then 16,000 one-byte references to it
    (64 MiB once decoded, RFC 7541 §7.3)."""
    first = bytes([0x40, 0x03]) + b"x-b" + bytes([0x7F, 0xA1, 0x1E]) + b"v" * 4000
    out = frame(HEADERS, END_STREAM | END_HEADERS, 1, GET + first)
    block = GET + bytes([0xBE]) * 16_000
    return (
        out
        + frame(HEADERS, 0, 3, block[:16384])
        + frame(CONTINUATION, END_HEADERS, 3, block[16384:])
    )


def header_list_over_the_limit() -> bytes:
    """One request whose header list (100 KiB of literals) is over the 64 KiB default."""
    value = b"v" * 1000
    field = bytes([0x00, 0x03]) + b"x-c" + bytes([0x7F, 0xE9, 0x06]) + value  # 1000 = 127 + 873
    block = GET + field * 100
    pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    out = frame(HEADERS, END_STREAM, 1, pieces[0])
    for i, piece in enumerate(pieces[1:], 1):
        out += frame(CONTINUATION, END_HEADERS if i == len(pieces) - 1 else 0, 1, piece)
    return out


def too_many_streams() -> bytes:
    """Streams opened past SETTINGS_MAX_CONCURRENT_STREAMS (set to 2 below), each held open
    (no END_STREAM) so none finishes."""
    return b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1, GET) for i in range(50))


def ping_flood() -> bytes:
    """200,000 PINGs whose ACKs are never read."""
    return frame(PING, 0, 0, b"12345678") * 200_000


def settings_flood() -> bytes:
    """200,000 empty SETTINGS whose ACKs are never read."""
    return frame(SETTINGS, 0, 0) * 200_000


def ending(port: int, payload: bytes) -> dict:
    """Sends the attack (stopping when the server stops taking it), then reads what comes
    back until the close or 3 quiet seconds: the GOAWAY codes, RST_STREAM codes, closed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + payload)
    except OSError:
        pass
    sock.settimeout(3)
    data, closed = b"", False
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
        closed = True
    except TimeoutError:
        pass
    except OSError:
        closed = True
    sock.close()
    goaway, resets, statuses, at = [], [], [], 0
    decoder = hpack.Decoder()
    while at + 9 <= len(data):
        length, kind = int.from_bytes(data[at : at + 3], "big"), data[at + 3]
        payload_ = data[at + 9 : at + 9 + length]
        if kind == GOAWAY and len(payload_) >= 8:
            goaway.append(int.from_bytes(payload_[4:8], "big"))
        if kind == RST and len(payload_) >= 4:
            resets.append(int.from_bytes(payload_[:4], "big"))
        if kind == HEADERS:  # a response head (no padding or priority: h2 sends none)
            statuses += [v for n, v in decoder.decode(payload_) if n == ":status"]
        at += 9 + length
    return {"goaway": goaway, "resets": resets, "statuses": statuses, "closed": closed}


@pytest.fixture(scope="module", params=list(APPS))
def server(request):
    args = ["--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge"]
    args += ["--http2-max-concurrent-streams", "2"]
    srv = start_server(APPS[request.param], *args, worker_class=request.param)
    yield srv
    srv.stop()


def still_serves(port: int) -> bool:
    """Another client is answered over HTTP/2 (the WSGI app's environ or the ASGI app's
    scope says so)."""
    url = f"http://127.0.0.1:{port}/env"
    command = ["curl", "-s", "--max-time", "10", "--http2-prior-knowledge", url]
    out = subprocess.run(command, capture_output=True, timeout=20)
    said = json.loads(out.stdout or b"{}")
    return said.get("protocol") == "HTTP/2" or said.get("http_version") == "2"


# (attack, the GOAWAY codes that count as defended)
ATTACKS = [
    (rapid_reset, {ENHANCE_YOUR_CALM}),
    (continuation_flood, {PROTOCOL_ERROR, COMPRESSION_ERROR, ENHANCE_YOUR_CALM}),
    (empty_continuation_flood, {PROTOCOL_ERROR, ENHANCE_YOUR_CALM}),
    (hpack_bomb, {COMPRESSION_ERROR, ENHANCE_YOUR_CALM, PROTOCOL_ERROR}),
    (ping_flood, {ENHANCE_YOUR_CALM}),
    (settings_flood, {ENHANCE_YOUR_CALM}),
]


@pytest.mark.parametrize(("attack", "codes"), ATTACKS, ids=[a.__name__ for a, _ in ATTACKS])
def test_attack_ends_its_connection_and_the_worker_serves_others(server, attack, codes):
    said = ending(server.port, attack())
    assert said["closed"] or said["goaway"], said
    assert set(said["goaway"]) & codes, said
    assert still_serves(server.port)


def test_header_list_over_the_limit_is_refused_and_the_worker_serves_others(server):
    said = ending(server.port, header_list_over_the_limit())
    # h2 answers 431 without the app (RFC 6585 §5), or resets the stream or connection.
    assert said["statuses"] == ["431"] or said["resets"] or said["goaway"], said
    assert still_serves(server.port)


def test_streams_past_the_limit_are_refused_and_the_worker_serves_others(server):
    said = ending(server.port, too_many_streams())
    # RFC 9113 §5.1.2: REFUSED_STREAM (7) for each stream past the limit, or a GOAWAY.
    assert 7 in said["resets"] or said["goaway"], said
    assert still_serves(server.port)
