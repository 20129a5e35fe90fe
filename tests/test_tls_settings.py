"""gunicorn's TLS settings read at config time: `--ciphers`, `--ssl-version`, `--cert-reqs`,
`--ca-certs`. A bad value is one line and exit 2, each compared with gunicorn 27 on the same
value: gunicorn refuses some at config time (exit 1); the others it accepts, then ignores
(`--ssl-version`) or fails every connection's handshake with (`--ciphers @FOO`: "No cipher
can be selected"). docs/tls-client-certs.md says which."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import REPO_ROOT, gunicorn_command, run_cli

APP = "app:app"
APP_SOURCE = "def app(environ, start_response):\n    pass\n"

# (arguments, the start of ferricorn's one line, whether gunicorn 27 refuses at config time)
BAD_VALUES = [
    (["--cert-reqs", "abc"], '--cert-reqs "abc": expected 0 (CERT_NONE), 1', True),
    (["--cert-reqs", "-1"], '--cert-reqs "-1": expected 0 (CERT_NONE)', True),
    # gunicorn takes any non-negative int; Python refuses 3 when each connection is wrapped.
    (["--cert-reqs", "3"], '--cert-reqs "3": expected 0 (CERT_NONE)', False),
    (["--ciphers", "AES256-SHA"], '--ciphers "AES256-SHA": chooses no TLS 1.2 cipher', False),
    (["--ciphers", "@FOO"], '--ciphers "@FOO": unknown command @FOO', False),
    (["--ciphers", "ECDHE+"], '--ciphers "ECDHE+": a cipher name is missing at the end', False),
    (["--ciphers", "TLS_AES_256_GCM_SHA384"], '--ciphers "TLS_AES_256_GCM_SHA384"', False),
    (["--ssl-version", "TLSv1"], '--ssl-version "TLSv1": TLS 1.0 is older than rustls', False),
    (["--ssl-version", "3"], '--ssl-version "3": TLS 1.0 is older than rustls', False),
    (["--ssl-version", "SSLv3"], '--ssl-version "SSLv3": SSL 3 is older than rustls', False),
    (
        ["--ssl-version", "TLS_CLIENT"],
        '--ssl-version "TLS_CLIENT": TLS_CLIENT is for clients',
        False,
    ),
    (["--ssl-version", "bogus"], '--ssl-version "bogus": expected TLS (the default)', False),
]


def run(args: list[str], cwd) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, timeout=60)


def gunicorn(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        gunicorn_command() + args, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "app.py").write_text(APP_SOURCE)
    return tmp_path


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and "panicked" not in out.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "line", "gunicorn_refuses"), BAD_VALUES)
def test_bad_value_is_one_line_and_exit_2(app_dir, args, line, gunicorn_refuses):
    ours = one_error_line(run([*args, "--check-config", APP], app_dir))
    assert ours.startswith(f"ferricorn: error: {line}"), ours
    theirs = gunicorn([*args, "--check-config", APP], app_dir)
    assert (theirs.returncode != 0) == gunicorn_refuses, (theirs.returncode, theirs.stderr)


def test_good_values_pass_and_print_as_gunicorn_prints_them(app_dir):
    (app_dir / "gunicorn.conf.py").write_text(
        "import ssl\n"
        "cert_reqs = ssl.CERT_REQUIRED\n"
        "ssl_version = ssl.PROTOCOL_TLSv1_2\n"
        "ciphers = 'ECDHE+AESGCM:!aNULL'\n"
    )

    def printed(out: subprocess.CompletedProcess) -> dict[str, str]:
        assert out.returncode == 0, out.stderr
        pairs = (line.split(" = ", 1) for line in out.stdout.splitlines() if " = " in line)
        values = {name.strip(): value for name, value in pairs}
        return {k: values[k] for k in ("ca_certs", "cert_reqs", "ciphers", "ssl_version")}

    ours = printed(run(["--print-config", APP], app_dir))
    assert ours == printed(gunicorn(["--print-config", APP], app_dir))
    assert ours == {
        "ca_certs": "None",
        "cert_reqs": "2",
        "ciphers": "ECDHE+AESGCM:!aNULL",
        "ssl_version": "5",
    }
    for args in (["--cert-reqs", "CERT_OPTIONAL"], ["--ssl-version", "TLSv1_3"]):
        assert run([*args, "--check-config", APP], app_dir).returncode == 0, args


def test_ciphers_rustls_lacks_are_named_in_a_warning(app_dir):
    out = run(
        ["--ciphers", "ECDHE+AESGCM:DHE-RSA-AES128-GCM-SHA256", "--check-config", APP], app_dir
    )
    assert out.returncode == 0, out.stderr
    assert (
        "ferricorn: warning: --ciphers: DHE-RSA-AES128-GCM-SHA256 chooses no cipher rustls has"
        in out.stdout
    ), out.stdout


def openssl_ca(directory) -> str:
    """A self-signed CA made by the openssl command, as an operator makes one."""
    if shutil.which("openssl") is None:
        assert not os.environ.get("CI"), "openssl is missing under CI"
        pytest.skip("the openssl command is not installed")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-nodes", "-subj", "/CN=Test CA", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return "ca.pem"


def test_client_certificate_settings_are_checked_with_certfile(app_dir):
    """With `certfile` the CA file is read and `--cert-reqs` 1 or 2 needs it; without, neither
    is (gunicorn builds no context then)."""
    (app_dir / "empty.pem").write_text("no certificate here\n")
    for name in ("cert.pem", "key.pem"):
        shutil.copy(REPO_ROOT / "src" / "tls" / "testdata" / name, app_dir / name)
    ca = openssl_ca(app_dir)
    rows = [
        ("cert_reqs = 2\n", "--cert-reqs 2: needs --ca-certs FILE"),
        ("cert_reqs = 1\n", "--cert-reqs 1: needs --ca-certs FILE"),
        ("ca_certs = 'missing.pem'\n", "--ca-certs missing.pem: No such file or directory"),
        ("ca_certs = 'empty.pem'\ncert_reqs = 2\n", "--ca-certs empty.pem: no PEM certificate"),
    ]
    for settings, line in rows:
        (app_dir / "gunicorn.conf.py").write_text(settings)
        assert run(["--check-config", APP], app_dir).returncode == 0, settings
        (app_dir / "gunicorn.conf.py").write_text(
            f"certfile = 'cert.pem'\nkeyfile = 'key.pem'\n{settings}"
        )
        ours = one_error_line(run(["--check-config", APP], app_dir))
        assert ours.startswith(f"ferricorn: error: {line}"), ours
    (app_dir / "gunicorn.conf.py").write_text(
        f"certfile = 'cert.pem'\nkeyfile = 'key.pem'\nca_certs = '{ca}'\n"
    )
    for reqs in ("0", "1", "2"):
        out = run(["--cert-reqs", reqs, "--check-config", APP], app_dir)
        assert out.returncode == 0, (reqs, out.stderr)
