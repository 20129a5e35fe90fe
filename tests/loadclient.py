"""A small, bounded HTTP load client for the supervision tests (reloads and upgrades under load).

``LoadClient`` runs a few threads that send ``GET target`` to the server until a duration
has passed, a request budget is spent, or ``stop()`` is called, and counts what happened:

- ``successes``: a whole 200 response (with the expected body, when one is given);
- ``failures``: anything else once a connection is open: another status, a reset or a close
  mid-response, a timeout, a response that does not parse or is cut short;
- ``connection_errors``: the connection itself could not be opened (refused, timed out);
- ``stale_retries``: on a keep-alive connection that already carried a response, the server
  closed it before sending a byte of the next one. The request is retried once on a new
  connection, as HTTP clients do (RFC 9112 section 9.3.1); only a failed retry is a failure.

Without ``keep_alive`` each request has a connection of its own (the sync worker closes after
every response); with it, a thread keeps its connection for as long as the server does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from conftest import Client, build_request, connection_tokens

MAX_SAMPLES = 10  # failure descriptions kept, for the assertion message


@dataclass
class LoadResult:
    successes: int = 0
    failures: int = 0
    connection_errors: int = 0
    stale_retries: int = 0
    elapsed: float = 0.0
    samples: list[str] = field(default_factory=list)  # the first failures, described
    bodies: list[bytes] = field(default_factory=list)  # successful bodies, with ``record``

    def summary(self) -> str:
        return (
            f"{self.successes} ok, {self.failures} failed, "
            f"{self.connection_errors} connection errors, {self.stale_retries} stale retries "
            f"in {self.elapsed:.1f}s"
        )


class _Outcome(Exception):
    """A request that did not end in a whole 200 response; ``kind`` says how it counts."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind  # "failure" or "connection_error"


class LoadClient:
    """Load against ``address``: ``with LoadClient(...) as load:`` runs it beside the block
    and waits for its end on leaving; ``load.result`` then holds the counts."""

    def __init__(
        self,
        address,
        target: str = "/",
        *,
        threads: int = 4,
        duration: float = 10.0,
        requests: int | None = None,
        keep_alive: bool = False,
        expect_body: bytes | None = None,
        record: bool = False,
        timeout: float = 10.0,
    ):
        self.address = address
        # Without keep-alive the client says so, and lets the server close first: the
        # TIME_WAIT then stays on the server's side, not on the client's ephemeral port.
        headers = [] if keep_alive else [("Connection", "close")]
        self.request = build_request("GET", target, headers)
        self.threads = threads
        self.duration = duration
        self.budget = requests
        self.keep_alive = keep_alive
        self.expect_body = expect_body
        self.record = record
        self.timeout = timeout
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._deadline = 0.0
        self._started = 0.0
        self._workers: list[threading.Thread] = []

    # --- control ---------------------------------------------------------------------------

    def start(self) -> LoadClient:
        self._started = time.monotonic()
        self._deadline = self._started + self.duration
        self._workers = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def running(self) -> bool:
        return any(worker.is_alive() for worker in self._workers)

    def join(self) -> LoadResult:
        """Waits for the threads (bounded: the duration plus one request's timeout)."""
        limit = max(0.0, self._deadline - time.monotonic()) + 2 * self.timeout + 5
        for worker in self._workers:
            worker.join(limit)
        stuck = [worker.name for worker in self._workers if worker.is_alive()]
        if stuck:
            raise AssertionError(f"load threads still running after {limit:.0f}s: {stuck}")
        self.result.elapsed = time.monotonic() - self._started
        return self.result

    def __enter__(self) -> LoadClient:
        return self.start()

    def __exit__(self, exc_type, *exc) -> None:
        """Runs the load to its end (duration, budget or ``stop()``); an error stops it now."""
        if exc_type is not None:
            self.stop()
        self.join()

    # --- the threads -----------------------------------------------------------------------

    def _claim(self) -> bool:
        """One more request, unless stopped, past the deadline or out of budget."""
        if self._stop.is_set() or time.monotonic() >= self._deadline:
            return False
        with self._lock:
            if self.budget is not None and self._sent >= self.budget:
                return False
            self._sent += 1
            return True

    def _count(self, kind: str, detail: str = "", body: bytes | None = None) -> None:
        with self._lock:
            setattr(self.result, kind, getattr(self.result, kind) + 1)
            if kind == "failures" or kind == "connection_errors":
                if len(self.result.samples) < MAX_SAMPLES:
                    self.result.samples.append(f"{kind}: {detail}")
            elif kind == "successes" and self.record:
                self.result.bodies.append(body)

    def _run(self) -> None:
        client: Client | None = None
        reused = False  # the connection has carried a response already
        try:
            while self._claim():
                try:
                    if client is None:
                        client, reused = self._connect(), False
                    response = self._exchange(client)
                    what = "a new connection"
                    if response is None and reused:
                        self._count("stale_retries")
                        client.close()
                        client, reused = self._connect(), False
                        response = self._exchange(client)
                        what = "the retry's new connection"
                    if response is None:
                        detail = f"{what} closed ({client.closed}) before any byte of the response"
                        raise _Outcome("failure", detail)
                    self._check(response)
                    if not self.keep_alive:
                        self._finish(client)
                except Exception as exc:  # counted, never lost with a dead thread
                    kind = getattr(exc, "kind", "failure")
                    kind = "connection_errors" if kind == "connection_error" else "failures"
                    self._count(kind, str(exc) if isinstance(exc, _Outcome) else repr(exc))
                    if client is not None:
                        client.close()
                    client = None
                    continue
                self._count("successes", body=response.body)
                if self.keep_alive and not client.closed and not _closing(response):
                    reused = True
                else:
                    client.close()
                    client = None
        finally:
            if client is not None:
                client.close()

    def _connect(self) -> Client:
        try:
            return Client(self.address, self.timeout)
        except OSError as exc:
            raise _Outcome("connection_error", repr(exc)) from None

    def _exchange(self, client: Client):
        """Sends the request; the response, or None when the server closed before a byte."""
        try:
            if not client.send(self.request):
                return client.read_response() if client.pending() else None
            return client.read_response()
        except (AssertionError, ValueError, OSError) as exc:  # timeout, bad framing, socket
            raise _Outcome("failure", repr(exc)) from None

    def _finish(self, client: Client) -> None:
        """Without keep-alive: nothing follows the response but the server's close."""
        try:
            extra = client.read_until_close()
        except (AssertionError, OSError) as exc:
            raise _Outcome("failure", f"not closed after the response: {exc!r}") from None
        if extra:
            raise _Outcome("failure", f"bytes after the response: {extra[:200]!r}")

    def _check(self, response) -> None:
        if response.status != 200:
            raise _Outcome("failure", f"status {response.status}: {response.body[:200]!r}")
        if not response.complete:
            raise _Outcome("failure", f"cut short after {len(response.body)} body bytes")
        if self.expect_body is not None and response.body != self.expect_body:
            raise _Outcome("failure", f"unexpected body {response.body[:200]!r}")


def _closing(response) -> bool:
    return "close" in connection_tokens(response) or response.version == "HTTP/1.0"
