"""Whether a TLS client resumes sessions: a relay that counts the hellos passing through.

``benches/tls_speed.py --check-hellos`` uses it; alone:
``.venv/bin/python benches/tls_hellos.py --upstream PORT -- wrk -t1 -c2 -d1s -H
'Connection: close' https://127.0.0.1:{port}/`` runs the command with ``{port}`` replaced
by the relay's, which forwards every connection to 127.0.0.1:PORT (a TLS server already
running) and reads the first record of each direction: a ClientHello with the
``pre_shared_key`` extension offers to resume a session, a ServerHello with it accepts
(TLS 1.3; a TLS 1.2 resumption is not counted). Prints the four counts.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

HOST = "127.0.0.1"
HANDSHAKE, CLIENT_HELLO, SERVER_HELLO = 22, 1, 2
PRE_SHARED_KEY = 41
RECORD_HEADER = 5


@dataclass
class Hellos:
    """What the relay saw."""

    #: ClientHellos, and those offering a session.
    client: int = 0
    offered: int = 0
    #: ServerHellos (HelloRetryRequests included), and those accepting a session.
    server: int = 0
    accepted: int = 0


def extensions(record: bytes) -> tuple[int, list[int]] | None:
    """The hello's type and extension types, from its first record; None if not a hello."""
    if len(record) < RECORD_HEADER + 4 or record[0] != HANDSHAKE:
        return None
    hello = record[RECORD_HEADER:]
    kind = hello[0]
    if kind not in (CLIENT_HELLO, SERVER_HELLO):
        return None
    at = 4 + 2 + 32  # handshake header, legacy version, random
    at += 1 + hello[at]  # legacy session id
    if kind == CLIENT_HELLO:
        at += 2 + int.from_bytes(hello[at : at + 2], "big")  # cipher suites
        at += 1 + hello[at]  # compression methods
    else:
        at += 2 + 1  # the cipher suite, the compression method
    end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
    at += 2
    found = []
    while at + 4 <= min(end, len(hello)):
        found.append(int.from_bytes(hello[at : at + 2], "big"))
        at += 4 + int.from_bytes(hello[at + 2 : at + 4], "big")
    return kind, found


class Relay:
    """Listens on a free port of 127.0.0.1 and forwards each connection to ``upstream``,
    counting hellos, until ``close``."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.hellos = Hellos()
        self.lock = threading.Lock()
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> Hellos:
        self.listener.close()
        return self.hellos

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection((HOST, self.upstream))
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client, server), daemon=True).start()

    def _serve(self, client: socket.socket, server: socket.socket) -> None:
        back = threading.Thread(target=self._pipe, args=(server, client), daemon=True)
        back.start()
        self._pipe(client, server)
        back.join()
        client.close()
        server.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        """Forwards until ``source`` ends, then ends ``sink``'s side (a half-close)."""
        first = b""
        try:
            while data := source.recv(65536):
                if first is not None:
                    first += data
                    need = RECORD_HEADER + int.from_bytes(first[3:5], "big")
                    if len(first) >= min(need, RECORD_HEADER + 512):
                        self._count(first)
                        first = None
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _count(self, record: bytes) -> None:
        parsed = extensions(record)
        if parsed is None:
            return
        kind, found = parsed
        with self.lock:
            if kind == CLIENT_HELLO:
                self.hellos.client += 1
                self.hellos.offered += PRE_SHARED_KEY in found
            else:
                self.hellos.server += 1
                self.hellos.accepted += PRE_SHARED_KEY in found


def through_relay(upstream: int, command: list[str], timeout: float = 60) -> Hellos:
    """Runs ``command`` (``{port}`` in its words becomes the relay's) and counts its hellos."""
    relay = Relay(upstream)
    try:
        argv = [word.replace("{port}", str(relay.port)) for word in command]
        subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    finally:
        hellos = relay.close()
    return hellos


def describe(hellos: Hellos) -> str:
    return (
        f"{hellos.offered} of {hellos.client} ClientHellos offered a session, "
        f"{hellos.accepted} of {hellos.server} ServerHellos accepted one"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=int, required=True, help="the TLS server's port")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the client, with {port}")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("tls_hellos.py: give the client's command after --, with {port} in it")
    print(describe(through_relay(args.upstream, command)))


if __name__ == "__main__":
    main()
