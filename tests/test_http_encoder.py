"""What the response encoder (crates/ferricorn-http) sends for an app's header values,
against a live gunicorn 27 in the same test."""

import pytest
from conftest import WORKER_CLASSES, Client, build_request, gunicorn_command, running

APP = "apps.response_headers:app"
# Control characters (RFC 9110 §5.5 allows none but HTAB in a value), then bytes it allows.
REFUSED = [0x01, 0x07, 0x08, 0x0B, 0x0C, 0x1B, 0x1F, 0x7F]
ALLOWED = [0x09, 0x20, 0x7E, 0x80, 0xE9, 0xFF]


@pytest.fixture(scope="module")
def servers():
    """ferricorn on each worker class, and gunicorn."""
    with (
        running(APP, worker_class=WORKER_CLASSES[0]) as first,
        running(APP, worker_class=WORKER_CLASSES[-1]) as second,
        running(APP, "--no-control-socket", command=gunicorn_command()) as gunicorn,
    ):
        yield {
            "ferricorn " + WORKER_CLASSES[0]: first,
            "ferricorn " + WORKER_CLASSES[-1]: second,
            "gunicorn": gunicorn,
        }


def answer(server, byte: int):
    with Client(server.address()) as client:
        client.send(build_request("GET", f"/?byte={byte}", [("Connection", "close")]))
        response = client.read_response()
    assert response is not None
    return response.status, response.header("X-Value")


@pytest.mark.parametrize("byte", REFUSED, ids=hex)
def test_regression_header_value_control_character_is_500_as_in_gunicorn(servers, byte):
    got = {name: answer(server, byte) for name, server in servers.items()}
    assert got == dict.fromkeys(servers, (500, None)), got


@pytest.mark.parametrize("byte", ALLOWED, ids=hex)
def test_header_value_visible_and_obs_text_bytes_are_sent_as_in_gunicorn(servers, byte):
    got = {name: answer(server, byte) for name, server in servers.items()}
    assert len(set(got.values())) == 1 and got["gunicorn"][0] == 200, got
