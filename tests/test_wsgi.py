"""The WSGI contract end to end: environ, wsgi.input, start_response, bodies, file_wrapper.

Most tests share one server per worker class (``apps.cases:app``, two workers, debug logs)
and pick a behaviour by path; see tests/apps/cases.py. Every request is followed by a look at
what the server did with the connection (``conftest.connection_after``): the sync worker
always closes; the async worker keeps a connection after a whole, framed response.
"""

import hashlib
import json
import re
import socket
import time
from urllib.parse import quote

import pytest
from apps import pattern
from conftest import (
    SOCKET_TIMEOUT,
    WORKER_CLASSES,
    Client,
    build_request,
    chunked,
    connection_after,
    running,
    wait_for,
)

APP = "apps.cases:app"

# What the connection does after a whole, framed response to a plain HTTP/1.1 request.
KEPT = {"sync": "closed", "async": "reused"}


@pytest.fixture(scope="module", params=WORKER_CLASSES)
def server(request, tmp_path_factory):
    state_dir = tmp_path_factory.mktemp(f"state-{request.param}")
    env = {"FERRICORN_TEST_STATE": str(state_dir)}
    with running(APP, workers=2, worker_class=request.param, log_level="debug", env=env) as srv:
        srv.state_dir = state_dir
        yield srv


def roundtrip(server, raw, *, head_request=False, timeout=SOCKET_TIMEOUT):
    """Sends ``raw`` on a fresh connection, reads the response, then sees what the server
    does with the connection (``response.after``)."""
    with Client(server.address(), timeout) as client:
        client.send(raw)
        response = client.read_response(head_request)
        assert response is not None, f"no response to {raw[:200]!r}"
        connection_after(client, response)
    if server.worker_class == "sync":
        assert response.after == "closed", "the sync worker answers once and closes"
    return response


def request(server, method, target, headers=None, body=None, version="1.1", **kwargs):
    raw = build_request(method, target, headers, body, version)
    return roundtrip(server, raw, head_request=(method == "HEAD"), **kwargs)


def get_json(server, target, **kwargs):
    response = request(server, "GET", target, **kwargs)
    assert response.status == 200, response
    return json.loads(response.body)


# --- the echo app under wsgiref.validate ---------------------------------------------------


def test_validated_get_with_query_and_headers(server):
    response = request(server, "GET", "/validated/x?a=1&b=two%20words", [("X-Custom", "v 1")])
    assert response.status == 200, response.body
    echo = json.loads(response.body)
    assert echo["method"] == "GET"
    assert echo["path"] == "/validated/x"
    assert echo["query"] == "a=1&b=two%20words"
    assert echo["headers"]["HTTP_X_CUSTOM"] == "v 1"
    assert echo["headers"]["HTTP_HOST"] == "127.0.0.1"
    assert echo["body_hex"] == ""
    assert response.after == KEPT[server.worker_class]


def test_validated_post_with_content_length(server):
    body = b'{"hello": "world"}'
    headers = [("Content-Type", "application/json")]
    response = request(server, "POST", "/validated", headers, body)
    assert response.status == 200, response.body
    echo = json.loads(response.body)
    assert echo["method"] == "POST"
    assert bytes.fromhex(echo["body_hex"]) == body
    assert echo["headers"]["CONTENT_TYPE"] == "application/json"
    assert echo["headers"]["CONTENT_LENGTH"] == str(len(body))
    assert "HTTP_CONTENT_TYPE" not in echo["headers"]
    assert "HTTP_CONTENT_LENGTH" not in echo["headers"]
    assert response.after == KEPT[server.worker_class]


@pytest.mark.parametrize(
    "target, query",
    [("/validated", ""), ("/validated?", ""), ("/validated?a=%20b&c&d=e=f", "a=%20b&c&d=e=f")],
)
def test_validated_query_string_is_raw(server, target, query):
    echo = get_json(server, target)
    assert echo["query"] == query


def test_chunked_upload_is_decoded(server):
    raw = b"POST /validated HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(
        b"hello ", b"chunked ", b"world"
    )
    response = roundtrip(server, raw)
    assert response.status == 200, response.body
    echo = json.loads(response.body)
    assert bytes.fromhex(echo["body_hex"]) == b"hello chunked world"
    assert "CONTENT_LENGTH" not in echo["headers"] or echo["headers"]["CONTENT_LENGTH"] == ""
    assert response.after == KEPT[server.worker_class]


# --- response bodies -------------------------------------------------------------------------


def test_streaming_body_is_chunked_on_http11(server):
    response = request(server, "GET", "/stream?n=5")
    assert response.status == 200
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.header("Content-Length") is None
    assert response.complete, response.raw_body
    assert response.body == b"".join(f"part {i}\n".encode() for i in range(5))
    assert response.after == KEPT[server.worker_class]


def test_streaming_body_is_close_delimited_on_http10(server):
    response = request(server, "GET", "/stream?n=5", version="1.0")
    assert response.status == 200
    assert response.header("Transfer-Encoding") is None
    assert response.header("Content-Length") is None
    assert response.raw_body == b"".join(f"part {i}\n".encode() for i in range(5))
    assert response.after == "closed"  # only the close ends this body


def test_write_callable(server):
    response = request(server, "GET", "/write")
    assert response.status == 200
    assert response.complete
    assert response.body == b"from write, then iterable"
    assert response.after == KEPT[server.worker_class]


def test_file_wrapper_real_file_uses_sendfile(server, tmp_path):
    data = pattern(1_000_003, seed=7)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    mark = server.log_mark()
    response = request(server, "GET", f"/file?path={quote(str(path))}")
    assert response.status == 200
    assert response.complete
    assert hashlib.sha256(response.body).hexdigest() == hashlib.sha256(data).hexdigest()
    assert response.after == KEPT[server.worker_class]
    server.wait_log(rf"sendfile: {len(data)} bytes", since=mark)


def test_file_wrapper_bytesio_is_read_in_blocks(server):
    size = 300_007
    mark = server.log_mark()
    response = request(server, "GET", f"/bytesio?n={size}")
    assert response.status == 200
    assert response.complete
    assert response.body == pattern(size)
    assert response.after == KEPT[server.worker_class]
    request(server, "GET", "/hello")  # a later request: its log lines come after ours
    assert f"sendfile: {size} bytes" not in server.log_since(mark)


def test_file_wrapper_honours_content_length(server, tmp_path):
    data = pattern(200_000, seed=8)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    response = request(server, "GET", f"/file?path={quote(str(path))}&cl=1000")
    assert response.status == 200
    assert response.header("Content-Length") == "1000"
    assert response.raw_body == data[:1000]
    assert response.after == KEPT[server.worker_class]


def test_file_wrapper_honours_file_offset(server, tmp_path):
    data = pattern(200_000, seed=9)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    response = request(server, "GET", f"/file?path={quote(str(path))}&seek=12345")
    assert response.status == 200
    assert response.complete
    assert response.body == data[12345:]
    assert response.after == KEPT[server.worker_class]


def test_file_wrapper_offset_and_content_length(server, tmp_path):
    data = pattern(200_000, seed=10)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    response = request(server, "GET", f"/file?path={quote(str(path))}&seek=100&cl=500")
    assert response.status == 200
    assert response.raw_body == data[100:600]
    assert response.after == KEPT[server.worker_class]


# --- errors from the application ------------------------------------------------------------


def test_start_response_twice_without_exc_info_is_500(server):
    response = request(server, "GET", "/sr-twice")
    assert response.status == 500
    assert b"should not be seen" not in response.raw_body


def test_exc_info_after_headers_closes_connection(server):
    response = request(server, "GET", "/exc-info-late")
    assert response.status == 200
    assert response.header("Content-Length") == "100"
    assert not response.complete
    assert response.raw_body == b"first part;"
    assert response.after == "closed"


def test_exception_before_headers_is_500_with_traceback_logged(server):
    mark = server.log_mark()
    response = request(server, "GET", "/error-before?token=tok-before-1")
    assert response.status == 500
    assert response.reason == "Internal Server Error"
    assert (response.header("Content-Type") or "").startswith("text/html")
    assert response.complete
    assert 0 < len(response.body) < 2000
    assert b"tok-before-1" not in response.body  # no traceback leaks to the client
    server.wait_log(r"Error handling request", since=mark)
    server.wait_log(r"RuntimeError: boom before headers tok-before-1", since=mark)
    # The traceback, not only its last line: the app's own frame must be there.
    server.wait_log(r"Traceback \(most recent call last\)", since=mark)
    server.wait_log(r'File ".*apps/cases\.py", line \d+, in error_before', since=mark)


def test_exception_after_headers_truncates_body(server):
    mark = server.log_mark()
    response = request(server, "GET", "/error-after?token=tok-after-1")
    assert response.status == 200
    assert response.header("Content-Length") == "1000"
    assert response.raw_body == b"x" * 10
    assert not response.complete
    assert response.after == "closed"
    server.wait_log(r"RuntimeError: boom after headers tok-after-1", since=mark)


def _close_record(server, token):
    path = server.state_dir / f"close-{token}.json"
    wait_for(path.exists, SOCKET_TIMEOUT, f"close() of {token} to be recorded")
    return wait_for(lambda: _load_json(path), SOCKET_TIMEOUT, f"a whole record in {path}")


def _load_json(path):
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def test_close_called_on_success(server):
    response = request(server, "GET", "/close-track?mode=ok&token=ok1")
    assert response.status == 200
    assert response.body == b"y" * 30
    assert response.after == KEPT[server.worker_class]
    record = _close_record(server, "ok1")
    assert record == {"closed": True, "sent": 3, "exhausted": True}


def test_close_called_on_app_error(server):
    response = request(server, "GET", "/close-track?mode=error&token=err1")
    assert response.status == 200  # the first chunk had gone out: the connection is cut
    assert not response.complete
    assert response.after == "closed"
    record = _close_record(server, "err1")
    assert record["closed"] is True
    assert record["exhausted"] is False


def test_close_called_on_client_disconnect(server):
    with Client(server.address()) as client:
        client.send(build_request("GET", "/close-track?mode=disconnect&token=gone1"))
        first = client.sock.recv(1024)
        assert first.startswith(b"HTTP/1.1 200"), first
    record = _close_record(server, "gone1")
    assert record["closed"] is True
    assert record["exhausted"] is False, "the server kept iterating after the client left"


# --- response headers and framing ------------------------------------------------------------


def test_head_has_headers_but_no_body(server):
    response = request(server, "HEAD", "/head")
    assert response.status == 200
    assert response.header("Content-Length") == "11"
    assert response.header("X-Head-Test") == "kept"
    assert response.raw_body == b""  # connection_after: nothing strays after the head
    assert response.after == KEPT[server.worker_class]


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server, code):
    response = request(server, "GET", f"/status?code={code}")
    assert response.status == code
    assert response.header("X-Status-Test") == str(code)
    assert response.header("Transfer-Encoding") is None
    assert response.raw_body == b""
    assert response.after == KEPT[server.worker_class]


def test_header_value_with_newline_is_500_and_logged(server):
    mark = server.log_mark()
    response = request(server, "GET", "/bad-header-value")
    assert response.status == 500
    assert response.header("X-Evil") is None
    assert response.header("X-Injected") is None
    server.wait_log(r"\[ERROR\]", since=mark)


def test_bad_header_name_is_500(server):
    response = request(server, "GET", "/bad-header-name")
    assert response.status == 500
    assert b"should not be seen" not in response.raw_body


def test_hop_by_hop_headers_from_app_are_dropped(server):
    # The client asks for a close, so that an app's "Connection: keep-alive" passed through
    # would show next to the server's own "close" on either worker.
    response = request(server, "GET", "/hop-by-hop", [("Connection", "close")])
    assert response.status == 200
    assert response.header_all("Connection") == ["close"]
    assert response.header("Keep-Alive") is None
    assert response.header("Transfer-Encoding") is None
    assert response.header("X-End-To-End") == "kept"
    assert response.raw_body == b"hello"
    assert response.after == "closed"


def test_server_and_date_headers(server):
    response = request(server, "GET", "/hello")
    assert response.header_all("Server") == ["ferricorn"]
    date = response.header("Date")
    assert date is not None
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", date), date


def test_server_header_from_app_wins(server):
    response = request(server, "GET", "/custom-server")
    assert response.header_all("Server") == ["my-app/1.0"]


def test_content_length_cuts_longer_body(server):
    response = request(server, "GET", "/cl-more")
    assert response.status == 200
    assert response.header("Content-Length") == "5"
    assert response.raw_body == b"hello"  # connection_after: the rest of the body is not sent
    assert response.after in ("closed", KEPT[server.worker_class])


def test_content_length_longer_than_body_closes(server):
    response = request(server, "GET", "/cl-less")
    assert response.status == 200
    assert response.header("Content-Length") == "20"
    assert response.raw_body == b"short"
    assert not response.complete
    assert response.after == "closed"


# --- request bodies --------------------------------------------------------------------------


def _read_interim(sock, deadline):
    """Reads until a full interim (or final) response head has arrived."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


EXPECT_HEADERS = [("Expect", "100-continue"), ("Content-Length", "5")]


def test_expect_100_continue_sent_when_app_reads(server):
    head = build_request("POST", "/continue?read=1", EXPECT_HEADERS)
    with Client(server.address()) as client:
        client.send(head)
        interim = _read_interim(client.sock, time.monotonic() + SOCKET_TIMEOUT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"hello")
        response = client.read_response()
        assert response.status == 200
        assert response.interim == []
        assert response.body == b"hello"
        assert connection_after(client, response) == KEPT[server.worker_class]


def test_expect_100_continue_not_sent_when_app_does_not_read(server):
    head = build_request("POST", "/continue?read=0", EXPECT_HEADERS)
    response = roundtrip(server, head)
    assert response.status == 200
    assert response.interim == []  # no 100 Continue
    assert response.body == b"(not read)"
    # The body never came and the app did not ask for it: the connection cannot go on.
    assert response.header_all("Connection") == ["close"]
    assert response.after == "closed"


def _short_body(server):
    # The async worker buffers bodies up to 1 MiB before calling the app (a short one is
    # answered 400 without it, see test_async.py); a bigger one streams to wsgi.input.
    length = 100 if server.worker_class == "sync" else 2 * 1024 * 1024
    head = build_request("POST", "/short-body", [("Content-Length", str(length))])
    with Client(server.address()) as client:
        client.send(head + b"only ten b")
        client.sock.shutdown(socket.SHUT_WR)
        response = client.read_response()
        assert response is not None and response.status == 200, response
        assert client.read_until_close() == b""
    return json.loads(response.body)


def test_short_body_raises_oserror_in_app(server):
    doc = _short_body(server)
    assert doc["raised"] is True, doc
    assert doc["is_oserror"] is True, doc


def test_short_body_raises_ferricorn_client_disconnected(server):
    doc = _short_body(server)
    assert doc["type"] == "ferricorn.ClientDisconnected", doc
    assert doc["is_exported_class"] is True, "ferricorn.ClientDisconnected is not importable"


INPUT_BODY = b"line1\nline2 is longer than the others\nl3\n\nlast line, no newline"
INPUT_LINES = INPUT_BODY.splitlines(keepends=True)


def _input_request(mode, framing):
    if framing == "content-length":
        return build_request("POST", f"/input?mode={mode}", body=INPUT_BODY)
    head = build_request("POST", f"/input?mode={mode}", [("Transfer-Encoding", "chunked")])
    # Chunk boundaries fall inside lines, so readline() has to join chunks.
    return head + chunked(INPUT_BODY[:3], INPUT_BODY[3:17], INPUT_BODY[17:18], INPUT_BODY[18:])


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize(
    "mode", ["read", "read_n", "readline", "readline_n", "readlines_hint", "iter"]
)
def test_wsgi_input_methods(server, mode, framing):
    response = roundtrip(server, _input_request(mode, framing))
    assert response.status == 200, response.body
    assert response.after == KEPT[server.worker_class]
    doc = json.loads(response.body)
    assert doc["types"] == ["bytes"]
    if mode == "readlines_hint":
        first, rest = ([bytes.fromhex(p) for p in call] for call in doc["calls"])
        # PEP 3333 lets the server ignore the hint: whole lines, in order, is what counts.
        assert first and first == INPUT_LINES[: len(first)]
        assert first + rest == INPUT_LINES
        return
    pieces = [bytes.fromhex(p) for p in doc["pieces"]]
    assert b"".join(pieces) == INPUT_BODY
    if mode == "read":
        assert pieces == [INPUT_BODY]
    elif mode == "read_n":
        assert all(len(p) == 7 for p in pieces[:-1]) and 0 < len(pieces[-1]) <= 7
    elif mode in ("readline", "iter"):
        assert pieces == INPUT_LINES
    elif mode == "readline_n":
        assert all(0 < len(p) <= 5 for p in pieces)
        assert all(p.endswith(b"\n") or len(p) == 5 for p in pieces[:-1])


# --- environ ---------------------------------------------------------------------------------


def test_environ_basics(server):
    with Client(server.address()) as client:
        local_port = client.sock.getsockname()[1]
        client.send(build_request("GET", "/environ/a?x=1"))
        doc = json.loads(client.read_response().body)
    env = doc["str"]
    assert doc["is_dict"] is True
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ/a"
    assert env["QUERY_STRING"] == "x=1"
    assert env["RAW_URI"] == "/environ/a?x=1"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["SERVER_SOFTWARE"].startswith("ferricorn/")


def test_environ_wsgi_keys(server):
    doc = get_json(server, "/environ")
    assert doc["wsgi"] == {
        "version": [1, 0],
        "version_is_tuple": True,
        "url_scheme": "http",
        "multithread": False,
        "multiprocess": True,  # this server runs two workers
        "run_once": False,
        "input_terminated": True,
    }
    types = doc["types"]
    for key in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
        assert key in types


def test_environ_http10_protocol(server):
    doc = get_json(server, "/environ", version="1.0")
    assert doc["str"]["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_path_info_is_percent_decoded_then_latin1(server):
    doc = get_json(server, "/environ/caf%C3%A9/a%20b/%41?q=%C3%A9")
    env = doc["str"]
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9/a b/A"
    assert env["RAW_URI"] == "/environ/caf%C3%A9/a%20b/%41?q=%C3%A9"
    assert env["QUERY_STRING"] == "q=%C3%A9"


def test_repeated_headers_are_joined_with_comma(server):
    headers = [("X-Multi", "a"), ("X-Other", "o"), ("X-Multi", "b c"), ("x-multi", "d")]
    doc = get_json(server, "/environ", headers=headers)
    assert doc["str"]["HTTP_X_MULTI"] == "a,b c,d"
    assert doc["str"]["HTTP_X_OTHER"] == "o"


def test_header_names_with_underscore_are_dropped(server):
    headers = [("X_Under", "1"), ("X-Dash", "2")]
    doc = get_json(server, "/environ", headers=headers)
    env = doc["str"]
    assert env["HTTP_X_DASH"] == "2"
    assert [k for k in env if "UNDER" in k] == []


def test_wsgi_errors_goes_to_server_stderr(server):
    mark = server.log_mark()
    response = request(server, "GET", "/errors?token=errors-token-42")
    assert response.status == 200
    server.wait_log(r"wsgi\.errors says errors-token-42", since=mark)


def test_script_name_from_environment_and_single_worker(tmp_path, worker_class):
    env = {"SCRIPT_NAME": "/mount", "FERRICORN_TEST_STATE": str(tmp_path)}
    with running(APP, workers=1, worker_class=worker_class, env=env) as srv:
        doc = get_json(srv, "/mount/environ/x%20y?z=1")
    env = doc["str"]
    assert env["SCRIPT_NAME"] == "/mount"
    assert env["PATH_INFO"] == "/environ/x y"
    assert env["RAW_URI"] == "/mount/environ/x%20y?z=1"
    assert doc["wsgi"]["multiprocess"] is False  # one worker
