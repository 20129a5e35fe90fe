"""The docs describe what the code does: every flag `--help` shows is in the settings
reference and in the README's gunicorn table."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO_ROOT, ferricorn_command, gunicorn_command
from ferricorn import _docs, _ferricorn

SETTINGS = (REPO_ROOT / "docs" / "settings.md").read_text()
README = (REPO_ROOT / "README.md").read_text()


def help_flags(command: list[str] | None = None) -> list[str]:
    out = subprocess.run(
        [*(command or ferricorn_command()), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    flags = re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", out)
    assert len(flags) >= 10, out
    return sorted(set(flags))


def test_settings_reference_names_every_flag():
    missing = [flag for flag in help_flags() if f"`{flag}" not in SETTINGS]
    assert not missing, f"docs/settings.md lacks {missing}"


def test_readme_table_names_every_flag():
    missing = [flag for flag in help_flags() if flag not in README]
    assert not missing, f"README.md's gunicorn table lacks {missing}"


def test_settings_table_is_generated_from_the_code():
    assert _docs.generated_section(SETTINGS) == _ferricorn.settings_markdown(), (
        "docs/settings.md drifted from src/config/options.rs: run `make docs`"
    )


def test_migration_table_covers_every_gunicorn_setting():
    from ferricorn import _config

    table = (REPO_ROOT / "docs" / "migrating.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_0-9]+)` \|[^|]*\| ([a-z ]+) \|", table, re.M))
    assert set(rows) == set(_config.GUNICORN_SETTINGS), set(rows) ^ set(_config.GUNICORN_SETTINGS)
    settings = _docs.generated_section(SETTINGS)
    for name, status in rows.items():
        if status in ("supported", "different") and name not in _config.HOOKS:
            assert f"`{name}`" in settings or name == "logconfig_dict", name


def test_readme_counts_the_gunicorn_flags_ferricorn_has():
    ours, theirs = set(help_flags()), set(help_flags(gunicorn_command()))
    counted = r"`ferricorn --help` has (\d+) of the (\d+) flags .*? and (\d+) of its own"
    said = re.search(counted, README)
    assert said, "README.md lost its flag count"
    want = (len(ours & theirs), len(theirs), len(ours - theirs))
    assert tuple(map(int, said.groups())) == want, f"README.md should say {want}"
