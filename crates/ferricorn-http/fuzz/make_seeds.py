"""Writes the seed corpus of each fuzz target into fuzz/seeds/<target>/.

Seeds: every request of tests/corpus/gunicorn-requests.json (at the repository root) and
the inputs of issue 8's bugs; `split` seeds carry the header `ferricorn_http::fuzzing::split`
reads (limits, read size, cut offsets) before the stream; `encode` seeds are responses an
app could give, valid and not, in the layout `ferricorn_http::fuzzing::encode` reads;
`proxy` seeds are PROXY protocol headers (v1, v2) before a request; `uwsgi` seeds are uwsgi
packets as nginx's `uwsgi_params` sends them, with bodies, and broken ones; `websocket`
seeds are client frame streams (RFC 6455 §5, Autobahn's kinds of case) in the layout
`ferricorn_http::fuzzing::websocket` reads; `handshake` seeds are upgrade requests. Run
`python3 crates/ferricorn-http/fuzz/make_seeds.py`; the output is deterministic.
"""

import json
import random
import shutil
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parents[2]
SEEDS = FUZZ / "seeds"
# Index of fuzzing::LIMITS: 0 gunicorn's defaults, 1 small, 2 all 0, 3 field size 0,
# 4 request line 0 with small field limits.
LIMITS = 5

SMUGGLE_TAIL = b"\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
# Bug 1 and 11: chunk sizes that overflowed (or were refused) at each digit count.
CHUNK_SIZES = [
    b"10000000000000000",
    b"10000000000000005",
    b"100000000000000005",
    b"1000000000000000000000000000005",
    b"20000000000000005",
    b"ffffffffffffffff",
    b"1000000000000000",
    b"1000000000000001",
]
ISSUE_CHUNKED = {
    **{f"issue8-size-{s.decode()}": s + SMUGGLE_TAIL for s in CHUNK_SIZES},
    "issue8-empty-extension": b"21;\r\n",
    "issue8-empty-extension-data": b"5;\r\nhello\r\n0\r\n\r\n",
    "issue8-space-extension": b"0; \r\n\r\n",
    "trailers": b"5\r\nhello\r\n0\r\nVary: *\r\nX: y\r\n\r\n",
    "extensions": b'5; a; b="c d"\r\nhello\r\n0;x\r\n\r\n',
}


def head_9k():
    """Bug 7: a 9 KB head of 1 KB lines, refused in pieces under field size 0."""
    fields = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000) for i in range(9))
    return b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"


ISSUE_HEADS = {
    "issue8-9k-head": head_9k(),
    "issue8-no-host": b"GET / HTTP/1.1\r\n\r\n",
    "issue8-smuggle": b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + CHUNK_SIZES[0]
    + SMUGGLE_TAIL,
    "issue8-keepalive-pair": b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
    "issue8-huge-content-length": b"POST / HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 18446744073709551616\r\n\r\n",
}


# Responses for `encode`: (status, [(name, value)], [body pieces]), all latin-1.
RESPONSES = {
    "ok": ("200 OK", [("Content-Type", "text/html; charset=utf-8")], [b"hello"]),
    "no-content": ("204 No Content", [("Content-Length", "0")], []),
    "not-modified": ("304 Not Modified", [("ETag", '"x"'), ("Content-Length", "9")], []),
    "upgrade": (
        "101 Switching Protocols",
        [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        [],
    ),
    "early-hints": ("103 Early Hints", [("Link", "</a.css>; rel=preload")], []),
    "hop-by-hop": (
        "200 OK",
        [
            ("Connection", "close"),
            ("Keep-Alive", "1"),
            ("TE", "x"),
            ("Trailers", "y"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Authenticate", "z"),
            ("X-Kept", "1"),
        ],
        [b"a", b"", b"b" * 300],
    ),
    "server-date": ("200 OK", [("Server", "app"), ("Date", "yesterday")], [b"x"]),
    "no-reason": ("404", [], [b"x"]),
    "unknown-code": ("599 ", [("X", "\t spaced \t")], [b"\r\n0\r\n\r\n", b"x" * 17]),
    "latin1": ("299 D\xe9j\xe0 vu", [("X-Name", "caf\xe9 \xff")], [b"\xfe\xfd"[:0], b"z"]),
    "control-value": ("200 OK", [("X", "a\x01b"), ("Y", "bell\x07"), ("Z", "del\x7f")], []),
    "split-value": ("200 OK", [("X", "a\r\nSet-Cookie: evil")], []),
    "bad-name": ("200 OK", [("Bad Name", "v"), ("", "v"), ("X:", "v")], []),
    "bad-status-crlf": ("200 OK\r\nX: y", [], []),
    "bad-status-low": ("099 Low", [], []),
    "bad-status-short": ("20 OK", [], []),
}
# Flag bytes (fuzzing::encode): 0x01 HTTP/1.1, 0x02 HEAD, 0x04 keep-alive, 0x08 a known
# length, 0x10 a Server header, 0x20 hop-by-hop headers pass, 0x40 UTF-8 strings.
FLAGS = [0x00, 0x05, 0x07, 0x0D, 0x15, 0x25, 0x2F]


def encode_seed(flags, status, headers, pieces):
    """The layout of ferricorn_http::fuzzing::encode."""
    head = [status.encode("latin-1")]
    for name, value in headers:
        head += [name.encode("latin-1"), value.encode("latin-1")]
    return bytes([flags]) + b"\xfe".join(head) + b"\xfd" + b"\xfe".join(pieces)


def encode_seeds():
    seeds = {}
    for name, (status, headers, pieces) in RESPONSES.items():
        for flags in FLAGS:
            seeds[f"{name}-flags{flags:02x}"] = encode_seed(flags, status, headers, pieces)
    utf8 = "200 \u20ac".encode()
    seeds["utf8-status"] = bytes([0x45]) + utf8 + b"\xfd" + b"x"
    seeds["utf8-value"] = bytes([0x45]) + b"200 OK\xfeX\xfe" + "\u20ac".encode() + b"\xfdx"
    return seeds


def corpus_requests():
    data = json.loads((ROOT / "tests" / "corpus" / "gunicorn-requests.json").read_text())
    for kind in ("valid", "invalid"):
        for name, case in sorted(data[kind].items()):
            yield f"gunicorn-{kind}-{name.removesuffix('.http')}", bytes.fromhex(case["raw_hex"])


def chunked_body(raw):
    """The bytes after the head, if the head frames its body as chunked."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if sep and b"chunked" in head.lower():
        return body
    return None


SIGNATURE = b"\r\n\r\n\0\r\nQUIT\n"
V2_IPV4_ADDRESSES = bytes([192, 168, 1, 10, 192, 168, 1, 1, 0x30, 0x39, 0x01, 0xBB])


def proxy_v2(ver_cmd, fam, body):
    """A PROXY v2 header: signature, version and command, family and protocol, length."""
    return SIGNATURE + bytes([ver_cmd, fam]) + len(body).to_bytes(2, "big") + body


def proxy_seeds():
    """Issue 12's PROXY headers: the gunicorn corpus's pp_ cases (header and request), and
    v2 headers of each command, family and TLV shape, valid and not."""
    seeds = {n: raw for n, raw in corpus_requests() if "-pp_" in n}
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    v2 = {
        "local": proxy_v2(0x20, 0x00, b"ignored"),
        "unspec": proxy_v2(0x21, 0x01, b""),
        "ipv4-tlvs": proxy_v2(0x21, 0x11, V2_IPV4_ADDRESSES + b"\x04\x00\x02ab\x05\x00\x00"),
        "ipv6": proxy_v2(0x21, 0x21, bytes(range(32)) + b"\xd4\x31\x00\x50"),
        "bad-version": proxy_v2(0x11, 0x11, V2_IPV4_ADDRESSES),
        "bad-command": proxy_v2(0x22, 0x11, V2_IPV4_ADDRESSES),
        "udp": proxy_v2(0x21, 0x12, V2_IPV4_ADDRESSES),
        "unix": proxy_v2(0x21, 0x31, bytes(216)),
        "short-ipv4": proxy_v2(0x21, 0x11, V2_IPV4_ADDRESSES[:11]),
        "truncated-tlv": proxy_v2(0x21, 0x11, V2_IPV4_ADDRESSES + b"\x04\x00"),
        "tlv-past-end": proxy_v2(0x21, 0x11, V2_IPV4_ADDRESSES + b"\x04\x00\x09ab"),
    }
    for name, header in v2.items():
        seeds[f"v2-{name}"] = header + request
    seeds["v1-tcp6"] = b"PROXY TCP6 ::1 ::2 1 65535\r\n" + request
    seeds["v1-unknown"] = b"PROXY UNKNOWN\r\n" + request
    seeds["v1-107-bytes-no-crlf"] = b"PROXY TCP4 " + b"1" * 100
    return seeds


def uwsgi_packet(pairs, modifier1=0, size=None):
    """A uwsgi packet: modifier1, the vars' size (u16 LE), modifier2 0, then each key and
    value with its u16 LE length; `size` overrides the header's size (a lying header)."""
    block = b"".join(len(part).to_bytes(2, "little") + part for pair in pairs for part in pair)
    size = len(block) if size is None else size
    return bytes([modifier1]) + size.to_bytes(2, "little") + b"\0" + block


def uwsgi_seeds():
    """Issue 12's uwsgi packets: what nginx sends for a GET and a POST, gunicorn's
    defaults (no vars), each var the mapping reads, and each refusal."""
    nginx = [
        (b"QUERY_STRING", b"a=1&b=2"),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"REQUEST_URI", b"/path/x%20y?a=1&b=2"),
        (b"PATH_INFO", b"/path/x y"),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"203.0.113.7"),
        (b"REMOTE_PORT", b"40123"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.com"),
        (b"HTTP_HOST", b"example.com"),
        (b"HTTP_USER_AGENT", b"curl/8.5.0"),
        (b"HTTP_ACCEPT", b"*/*"),
    ]
    post = [(k, v) for k, v in nginx if k not in (b"REQUEST_METHOD", b"CONTENT_LENGTH")]
    post += [(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5")]
    seeds = {
        "nginx-get": uwsgi_packet(nginx),
        "nginx-post-body": uwsgi_packet(post) + b"hello",
        "empty": uwsgi_packet([]),
        "https-on": uwsgi_packet([(b"HTTPS", b"on"), (b"HTTP_CONNECTION", b"close")]),
        "url-scheme": uwsgi_packet([(b"wsgi.url_scheme", b"https")]),
        "repeated-var": uwsgi_packet([(b"HTTP_A", b"1"), (b"HTTP_B", b"2"), (b"HTTP_A", b"3")]),
        "decoded-path": uwsgi_packet([(b"PATH_INFO", b"/a%20b?c#d\xe9"), (b"QUERY_STRING", b"q#")]),
        "absolute-path": uwsgi_packet([(b"PATH_INFO", b"http://h/x")]),
        "modifier1": uwsgi_packet(nginx, modifier1=5),
        "truncated-key-size": uwsgi_packet([], size=1) + b"\x05",
        "truncated-key": uwsgi_packet([], size=3) + b"\x05\0k",
        "truncated-value": uwsgi_packet([(b"K", b"value")], size=9),
        "bad-method": uwsgi_packet([(b"REQUEST_METHOD", b"G T")]),
        "bad-content-length": uwsgi_packet([(b"CONTENT_LENGTH", b"-1")]),
        "huge-content-length": uwsgi_packet([(b"CONTENT_LENGTH", b"9" * 30)]),
        "long-header": uwsgi_packet([(b"HTTP_X", b"v" * 9000)]),
        "too-many-vars": uwsgi_packet([(b"K%d" % i, b"") for i in range(1001)]),
        "two-packets": uwsgi_packet([(b"PATH_INFO", b"/1")]) + uwsgi_packet([]),
    }
    return seeds


def split_seed(limits, read_pow, cuts, stream):
    """The layout of ferricorn::http::fuzzing::split_seed."""
    out = bytes([limits, (read_pow << 4) | len(cuts)])
    return out + b"".join(c.to_bytes(2, "little") for c in cuts) + stream


WS_MASK = b"\x37\xfa\x21\x3d"
# Index of fuzzing::WS_LIMITS: 0 none, 1 16 MiB, 2 1000, 3 64, 4 5.
WS_LIMITS = 5


def ws_frame(b0, payload, length=None, masked=True):
    """A client frame: first byte b0, the minimal length unless `length` is given."""
    n = len(payload)
    if length is None:
        length = (
            bytes([n])
            if n < 126
            else (b"\x7e" + n.to_bytes(2, "big") if n < 65536 else b"\x7f" + n.to_bytes(8, "big"))
        )
    head = bytes([b0, length[0] | (0x80 if masked else 0)]) + length[1:]
    if not masked:
        return head + payload
    return head + WS_MASK + bytes(b ^ WS_MASK[i % 4] for i, b in enumerate(payload))


def ws_streams():
    """Client streams, valid and not: each rule of the decoder, Autobahn's kinds of case."""
    kappa = "κόσμε".encode()
    bad = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"
    return {
        "text": ws_frame(0x81, b"Hello"),
        "binary": ws_frame(0x82, bytes(range(256))),
        "empty": ws_frame(0x81, b"") + ws_frame(0x82, b""),
        "len16": ws_frame(0x82, b"x" * 300),
        "len64": ws_frame(0x82, b"y" * 65536),
        "ping-pong": ws_frame(0x89, b"ping") + ws_frame(0x8A, b"") + ws_frame(0x89, b"p" * 125),
        "fragments": ws_frame(0x01, b"Hel") + ws_frame(0x00, b"l") + ws_frame(0x80, b"o"),
        "fragments-ping": ws_frame(0x01, b"a") + ws_frame(0x89, b"x") + ws_frame(0x80, b"b"),
        "fragments-empty": ws_frame(0x01, b"") + ws_frame(0x00, b"") + ws_frame(0x80, b""),
        "utf8-split": ws_frame(0x01, kappa[:3]) + ws_frame(0x80, kappa[3:]),
        "utf8-bad": ws_frame(0x81, bad),
        "utf8-bad-fragments": ws_frame(0x01, bad[:12])
        + ws_frame(0x00, bad[12:14])
        + ws_frame(0x80, bad[14:]),
        "utf8-cut": ws_frame(0x81, kappa[:3]),
        "close-empty": ws_frame(0x88, b""),
        "close-code": ws_frame(0x88, b"\x03\xe8"),
        "close-reason": ws_frame(0x88, b"\x0f\xa0" + "fin ✓".encode()),
        "close-1-byte": ws_frame(0x88, b"\x03"),
        "close-1005": ws_frame(0x88, b"\x03\xed"),
        "close-bad-reason": ws_frame(0x88, b"\x03\xe8\xff"),
        "close-then-data": ws_frame(0x88, b"") + ws_frame(0x81, b"late"),
        "unmasked": ws_frame(0x81, b"a", masked=False),
        "rsv": ws_frame(0xC1, b"a") + ws_frame(0xA2, b"") + ws_frame(0x91, b""),
        "opcode-reserved": ws_frame(0x83, b"") + ws_frame(0x8B, b""),
        "control-long": ws_frame(0x89, b"z" * 126),
        "control-fragmented": ws_frame(0x09, b"a"),
        "continuation-alone": ws_frame(0x80, b"a"),
        "new-inside-fragmented": ws_frame(0x01, b"a") + ws_frame(0x82, b"b"),
        "len64-top-bit": ws_frame(0x82, b"", length=b"\x7f\x80" + b"\0" * 7),
        "len64-huge": ws_frame(0x82, b"", length=b"\x7f\x00\x00\x00\x01\x00\x00\x00\x00"),
        "len16-non-minimal": ws_frame(0x82, b"a", length=b"\x7e\x00\x01"),
        "too-big-fragments": ws_frame(0x02, b"a" * 40) + ws_frame(0x80, b"b" * 40),
    }


def websocket_seeds(rng):
    seeds = {}
    for name, stream in ws_streams().items():
        for limit in range(WS_LIMITS):
            cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(1, 8)))
            out = bytes([limit, 0, len(cuts)]) + b"".join(c.to_bytes(2, "little") for c in cuts)
            seeds[f"{name}-limit{limit}"] = out + stream
    return seeds


def handshake_seeds():
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    up = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

    def req(fields, start=up):
        return start + fields + b"\r\n"

    v13 = b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n"
    return {
        "valid": req(v13),
        "protocols": req(v13 + b"Sec-WebSocket-Protocol: chat, superchat\r\n"),
        "protocols-empty-items": req(v13 + b"Sec-WebSocket-Protocol: a,, b ,\r\n"),
        "protocol-bad-header": req(v13 + b"Sec-WebSocket-Protocol: a b, c\r\n"),
        "extensions": req(
            v13 + b"Sec-WebSocket-Extensions: permessage-deflate; "
            b"client_max_window_bits\r\nSec-WebSocket-Extensions: x\r\n"
        ),
        "version-8": req(b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " + key + b"\r\n"),
        "version-missing": req(b"Sec-WebSocket-Key: " + key + b"\r\n"),
        "version-nbsp": req(
            b"Sec-WebSocket-Version: 13\xa0\r\nSec-WebSocket-Key: " + key + b"\r\n"
        ),
        "key-missing": req(b"Sec-WebSocket-Version: 13\r\n"),
        "key-short": req(b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAA\r\n"),
        "key-one-pad": req(
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=\r\n"
        ),
        "key-twice": req(v13 + b"Sec-WebSocket-Key: x\r\n"),
        "connection-list": req(
            v13,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
            b"Connection: keep-alive, Upgrade\r\n",
        ),
        "post": req(
            v13,
            b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nContent-Length: 0\r\n",
        ),
        "h2c": req(b"", b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"),
        "plain": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "http10": req(v13, b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"),
    }


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    seeds = {"head": {}, "chunked": dict(ISSUE_CHUNKED), "split": {}, "encode": encode_seeds()}
    seeds["proxy"] = proxy_seeds()
    seeds["uwsgi"] = uwsgi_seeds()
    seeds["websocket"] = websocket_seeds(random.Random(6455))
    seeds["handshake"] = handshake_seeds()
    rng = random.Random(8)
    for name, raw in [*corpus_requests(), *ISSUE_HEADS.items()]:
        seeds["head"][name] = raw
        body = chunked_body(raw)
        if body is not None:
            seeds["chunked"][name] = body
        for limits in range(LIMITS):
            n = rng.randrange(1, 8)
            cuts = sorted(rng.randrange(len(raw) + 1) for _ in range(n))
            seeds["split"][f"{name}-limits{limits}"] = split_seed(
                limits, rng.randrange(16), cuts, raw
            )
    # Bug 7: the 9 KB head whole (no cuts) and in 1 KB pieces, with field size 0.
    big = head_9k()
    seeds["split"]["issue8-9k-head-1k-pieces"] = split_seed(
        3, 15, list(range(1024, 9 * 1024, 1024)), big
    )
    for target, files in seeds.items():
        (SEEDS / target).mkdir(parents=True)
        for name, content in files.items():
            (SEEDS / target / name).write_bytes(content)
        print(target, len(files), "seeds,", sum(map(len, files.values())), "bytes")


if __name__ == "__main__":
    main()
