"""Writes the seed corpus of each fuzz target into fuzz/seeds/<target>/.

Seeds: every request of tests/corpus/gunicorn-requests.json (at the repository root) and
the inputs of issue 8's bugs; `split` seeds carry the header `ferricorn_http::fuzzing::split`
reads (limits, read size, cut offsets) before the stream; `encode` seeds are responses an
app could give, valid and not, in the layout `ferricorn_http::fuzzing::encode` reads;
`proxy` seeds are PROXY protocol headers (v1, v2) before a request; `uwsgi` seeds are uwsgi
packets as nginx's `uwsgi_params` sends them, with bodies, and broken ones. Run
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
    "upgrade": ("101 Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade")], []),
    "early-hints": ("103 Early Hints", [("Link", "</a.css>; rel=preload")], []),
    "hop-by-hop": (
        "200 OK",
        [("Connection", "close"), ("Keep-Alive", "1"), ("TE", "x"), ("Trailers", "y"),
         ("Transfer-Encoding", "chunked"), ("Proxy-Authenticate", "z"), ("X-Kept", "1")],
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
    block = b"".join(
        len(part).to_bytes(2, "little") + part for pair in pairs for part in pair
    )
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


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    seeds = {"head": {}, "chunked": dict(ISSUE_CHUNKED), "split": {}, "encode": encode_seeds()}
    seeds["proxy"] = proxy_seeds()
    seeds["uwsgi"] = uwsgi_seeds()
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
