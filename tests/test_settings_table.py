"""The defaults docs/settings.md states are the ones the server applies (issue 10, item 4).

`--print-config` reads each value back from the validated settings, so a default that the
code applies differently from the table, or a page not regenerated after the table changed,
shows up as a difference with the page's default column. For gunicorn's own settings the
same defaults are compared with a live gunicorn 27's `--print-config`.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess

import pytest
from conftest import REPO_ROOT, RUN_DEADLINE, TESTS_DIR, ferricorn_command, gunicorn_command
from ferricorn import _docs

APP = "apps.config_app:app"

# Defaults the page describes rather than states: worked out when the server starts (the
# directory, the user, the config file found) or left as the system has them.
DESCRIBED = {"config", "chdir", "user", "group", "umask", "worker_tmp_dir", "control_socket"}
# gunicorn's default is a function of its own (docs/tls.md#ssl_context).
DESCRIBED |= {"ssl_context"}

# gunicorn prints `proc_name = None` and the name its titles use as `default_proc_name`.
THEIR_NAME = {"proc_name": "default_proc_name"}

# Environment variables that would change a default (bind, workers, proxies) or add settings.
ENV_SETTINGS = (
    "PORT",
    "WEB_CONCURRENCY",
    "FORWARDED_ALLOW_IPS",
    "FERRICORN_CMD_ARGS",
    "GUNICORN_CMD_ARGS",
)


def documented() -> dict[str, tuple[str, bool]]:
    """The generated table's rows: setting name -> (default column, whether gunicorn has it)."""
    table = _docs.generated_section((REPO_ROOT / "docs" / "settings.md").read_text())
    rows = {}
    for line in table.splitlines()[2:]:
        _flags, setting, default, _meaning = (
            cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]
        )
        match = re.fullmatch(r"`([a-z0-9_]+)`( \(ferricorn only\))?", setting)
        assert match, line
        rows[match.group(1)] = (default.replace("\\|", "|"), match.group(2) is None)
    return rows


def expected(name: str, default: str) -> set[str] | None:
    """What `--print-config` must print for a documented default; None: described only."""
    if name in DESCRIBED:
        return None
    if name == "print_config":
        return {"True"}  # the test asks for it
    if default == "off":
        return {"False"}
    if default == "none":
        return {"None", "[]"}
    if default == "empty":
        return {""}
    # A value, alone or followed by what the environment may put instead (", or $PORT").
    match = re.fullmatch(r"(?:(\d+)|`([^`]+)`)(?:, or .*)?", default)
    assert match, f"{name}: default {default!r} is neither a value nor described"
    value = match.group(1) or match.group(2)
    if value in ("true", "false"):
        return {value.capitalize()}  # a flag that is on by default, as Python prints it
    return {APP if value == "APP_MODULE" else value}


def print_config(command: list[str], cwd) -> dict[str, str]:
    """`command --print-config APP` in a directory with no config file, as `name = value`."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_SETTINGS}
    env["PYTHONPATH"] = str(TESTS_DIR)
    out = subprocess.run(
        [*command, "--print-config", APP],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE * 2,
    )
    assert out.returncode == 0, out.stderr
    pairs = (line.split(" = ", 1) for line in out.stdout.splitlines() if " = " in line)
    return {name.strip(): value for name, value in pairs}


def same_value(text: str):
    """A printed value with lists read as comma-joined text: gunicorn prints `['a', 'b']`
    where ferricorn keeps the text it was given (`a,b`) or prints a single value bare."""
    try:
        value = ast.literal_eval(text) if text[:1] in "[{" else text
    except (ValueError, SyntaxError):
        return text
    return ",".join(map(str, value)) if isinstance(value, list) else value


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> dict[str, str]:
    return print_config(ferricorn_command(), tmp_path_factory.mktemp("ferricorn"))


def test_print_config_lists_every_documented_setting(printed):
    assert set(printed) == set(documented())


def test_applied_defaults_are_the_documented_ones(printed):
    wrong = {}
    for name, (default, _gunicorn) in documented().items():
        want = expected(name, default)
        if want is not None and printed[name] not in want:
            wrong[name] = f"docs say {default!r}, --print-config says {printed[name]!r}"
    assert not wrong, wrong


def test_documented_gunicorn_defaults_are_gunicorns(printed, tmp_path):
    theirs = print_config(gunicorn_command(), tmp_path)
    compared, wrong = [], {}
    for name, (default, gunicorn) in documented().items():
        if not gunicorn or name not in theirs or expected(name, default) is None:
            continue
        compared.append(name)
        their = theirs[THEIR_NAME.get(name, name)]
        if same_value(printed[name]) != same_value(their):
            wrong[name] = f"ferricorn {printed[name]!r}, gunicorn {their!r}"
    assert not wrong, wrong
    assert len(compared) >= 40, compared


# A config file's values print as gunicorn prints them: an empty dict that trusts no scheme
# header, two binds, a umask in octal, a flag from a bool.
CONFIG_FILE = """\
secure_scheme_headers = {}
bind = ["127.0.0.1:8001", "127.0.0.1:8002"]
umask = 0o22
preload_app = True
raw_env = ["A=1", "B=2"]
workers = 3
"""


def test_config_file_values_print_as_gunicorns(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(CONFIG_FILE)
    ours = print_config(ferricorn_command(), tmp_path)
    theirs = print_config(gunicorn_command(), tmp_path)
    names = ["secure_scheme_headers", "bind", "umask", "preload_app", "raw_env", "workers"]
    assert {n: ours[n] for n in names} == {n: theirs[n] for n in names}


def test_limit_request_body_from_every_source(tmp_path):
    (tmp_path / "ferricorn.conf.py").write_text("limit_request_body = 1048576\n")
    assert print_config(ferricorn_command(), tmp_path)["limit_request_body"] == "1048576"
    assert "limit_request_body" not in print_config(gunicorn_command(), tmp_path)
