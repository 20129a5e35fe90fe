"""Regenerates the settings table of docs/settings.md from the code (``make docs``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ferricorn import _ferricorn

BEGIN = "<!-- generated from src/config/options.rs by `make docs`: edit the OPTIONS there -->"
END = "<!-- end of generated table -->"


def generated_section(text: str) -> str:
    """The part of the page between the markers."""
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    if not match:
        raise ValueError("docs/settings.md has lost its generated-table markers")
    return match.group(1)


def update(path: Path) -> bool:
    """Rewrites the table in place; returns whether it changed."""
    text = path.read_text()
    old = generated_section(text)
    new = _ferricorn.settings_markdown()
    if old == new:
        return False
    path.write_text(text.replace(BEGIN + "\n" + old, BEGIN + "\n" + new, 1))
    return True


if __name__ == "__main__":
    changed = update(Path(sys.argv[1]))
    print(f"{sys.argv[1]}: {'updated' if changed else 'up to date'}")
