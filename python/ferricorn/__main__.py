"""``python -m ferricorn`` and the ``ferricorn`` console script."""

import signal
import sys

from ferricorn import _ferricorn

# The master's Rust loop handles these itself. Python's own handlers would
# turn Ctrl-C into a KeyboardInterrupt traceback once the loop returns.
_SIGNALS = ("SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU")


def main() -> None:
    for name in _SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    sys.exit(_ferricorn.run(sys.argv))


if __name__ == "__main__":
    main()
