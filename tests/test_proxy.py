"""Proxy awareness, as gunicorn decides it: which front ends are believed about the scheme
and the mount point, and what happens to header names with underscores."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import TESTS_DIR, build_request, gunicorn_command, run_cli

APP = "apps.proxy_app:app"


def ask(server, headers, target="/app/page"):
    response = server.exchange(build_request("GET", target, headers)).response
    assert response is not None
    return response.status, (json.loads(response.body) if response.status == 200 else None)


def test_scheme_headers_from_a_trusted_front_end(server_factory, worker_class):
    srv = server_factory(APP, worker_class=worker_class)  # default: 127.0.0.1 is trusted
    assert ask(srv, [("X-Forwarded-Proto", "https")])[1]["scheme"] == "https"
    assert (
        ask(srv, [("X-Forwarded-Ssl", "on"), ("X-Forwarded-Proto", "https")])[1]["scheme"]
        == "https"
    )
    assert ask(srv, [("X-Forwarded-Proto", "http")])[1]["scheme"] == "http"
    assert ask(srv, [])[1]["scheme"] == "http"
    status, _ = ask(srv, [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")])
    assert status == 400  # contradictory scheme headers


@pytest.mark.parametrize("allow", ["10.0.0.1", "192.168.0.0/16,::1"])
def test_untrusted_front_end_is_not_believed(server_factory, allow):
    srv = server_factory(APP, "--forwarded-allow-ips", allow)
    status, doc = ask(srv, [("X-Forwarded-Proto", "https"), ("SCRIPT_NAME", "/app")])
    assert status == 200
    assert (doc["scheme"], doc["script_name"], doc["path_info"]) == ("http", "", "/app/page")
    # Contradictions from an untrusted peer are not even looked at.
    assert ask(srv, [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")])[0] == 200


@pytest.mark.parametrize("allow", ["*", "127.0.0.0/8"])
def test_trusted_by_network_or_star(server_factory, allow):
    srv = server_factory(APP, "--forwarded-allow-ips", allow)
    assert ask(srv, [("X-Forwarded-Proto", "https")])[1]["scheme"] == "https"


def test_forwarded_allow_ips_from_the_environment(server_factory):
    srv = server_factory(APP, env={"FORWARDED_ALLOW_IPS": "10.9.9.9"})
    assert ask(srv, [("X-Forwarded-Proto", "https")])[1]["scheme"] == "http"


def test_script_name_from_a_trusted_forwarder(server_factory, worker_class):
    srv = server_factory(APP, worker_class=worker_class)
    status, doc = ask(srv, [("SCRIPT_NAME", "/app")])
    assert (status, doc["script_name"], doc["path_info"]) == (200, "/app", "/page")
    assert doc["headers"].get("HTTP_SCRIPT_NAME") == "/app"
    assert ask(srv, [("SCRIPT_NAME", "/elsewhere")])[0] == 400


@pytest.mark.parametrize(
    ("header_map", "status", "kept"),
    [("drop", 200, False), ("refuse", 400, None), ("dangerous", 200, True)],
)
def test_header_map(server_factory, header_map, status, kept):
    srv = server_factory(APP, "--header-map", header_map)
    got, doc = ask(srv, [("X_Custom", "sneaky"), ("X-Other", "plain")])
    assert got == status
    if doc is not None:
        assert doc["headers"]["HTTP_X_OTHER"] == "plain"
        assert ("HTTP_X_CUSTOM" in doc["headers"]) is kept


def test_forwarder_headers_setting(server_factory):
    srv = server_factory(APP, "--forwarder-headers", "X_REAL_CLIENT")
    _, doc = ask(srv, [("X_Real_Client", "1.2.3.4"), ("SCRIPT_NAME", "/app")])
    assert doc["headers"]["HTTP_X_REAL_CLIENT"] == "1.2.3.4"
    assert doc["script_name"] == ""  # SCRIPT_NAME is no longer a forwarder header


def test_secure_scheme_headers_from_a_config_file(server_factory, tmp_path):
    conf = tmp_path / "proxy.conf.py"
    conf.write_text("secure_scheme_headers = {'X-Scheme': 'https'}\n")
    srv = server_factory(APP, "-c", str(conf))
    assert ask(srv, [("X-Scheme", "https")])[1]["scheme"] == "https"
    assert ask(srv, [("X-Forwarded-Proto", "https")])[1]["scheme"] == "http"


def test_bad_proxy_settings_are_one_line(server_factory):
    for flags, message in [
        (["--forwarded-allow-ips", "not-an-ip"], "is not an IP address or network"),
        (["--header-map", "loose"], "expected drop, refuse or dangerous"),
    ]:
        srv = server_factory.spawn([*flags, APP])
        assert srv.wait_exit() == 2
        assert message in srv.stderr


@pytest.mark.parametrize("flag", ["--forwarded-allow-ips", "--proxy-allow-from"])
def test_a_network_with_host_bits_set_is_refused_as_gunicorn_refuses_it(flag, tmp_path):
    """``10.0.0.1/8`` is a typo for an address or for ``10.0.0.0/8``: gunicorn 27 refuses it
    (Python's strict ``ip_network``) and so does ferricorn, with one line; it used to be
    taken as 10.0.0.0/8."""
    args = [flag, "10.0.0.1/8", "--check-config", APP]
    theirs = subprocess.run(
        [*gunicorn_command(), *args], cwd=TESTS_DIR, capture_output=True, text=True, timeout=60
    )
    assert theirs.returncode != 0 and "10.0.0.1/8 has host bits set" in theirs.stderr
    ours = run_cli(*args)
    assert ours.returncode == 2, ours.stderr
    assert f'{flag}: "10.0.0.1/8" has host bits set (the network is 10.0.0.0/8)' in ours.stderr
    assert len(ours.stderr.strip().splitlines()) == 1, ours.stderr
