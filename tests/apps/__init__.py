"""WSGI applications that the end-to-end tests run under ferricorn.

The tests start the server with ``tests/`` as its working directory, so these import as
``apps.<module>:<name>``. Data helpers shared by the apps and the tests live here.
"""

import random

CHUNK = 65536


def pattern_chunks(size, seed=1234, chunk=CHUNK):
    """Deterministic pseudo-random bytes, ``size`` in all, in pieces of ``chunk`` bytes.

    The app and the test generate the same stream, so a download or an upload can be checked
    by hash without either side holding it whole.
    """
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def pattern(size, seed=1234):
    return b"".join(pattern_chunks(size, seed))
