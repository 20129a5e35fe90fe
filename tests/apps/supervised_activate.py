"""A stand-in for systemd's socket activation: ``python supervised_activate.py CMD ARGS...``.

It binds and listens on 127.0.0.1 (a free port), puts that socket at file descriptor 3,
sets ``LISTEN_FDS=1`` and ``LISTEN_PID`` to its own pid, prints ``activation port: N`` on
stdout, and execs ``CMD``, which keeps the pid, as the process systemd would start.
"""

import os
import socket
import sys

ACTIVATION_FD = 3  # SD_LISTEN_FDS_START


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    if sock.fileno() != ACTIVATION_FD:
        os.dup2(sock.fileno(), ACTIVATION_FD)
    os.set_inheritable(ACTIVATION_FD, True)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    print(f"activation port: {port}", flush=True)
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
