"""STYLE.md's rules that a reader can check by eye, checked for them: no Rust function over
60 lines outside a named hot path, and a `///` line on every struct field (why it exists).

Unit tests (after `#[cfg(test)]`, and `*_tests.rs` files) are not held to either rule."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "src", *sorted((ROOT / "crates").glob("*/src"))]
MAX_LINES = 60

FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?(extern\s+"C"\s+)?fn\s+(\w+)')
STRUCT = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?struct\s+\w+[^;(]*\{\s*$")
FIELD = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?\w+\s*:")


def logic_lines(path: Path) -> list[str]:
    text = path.read_text()
    cut = text.find("#[cfg(test)]")
    return (text if cut < 0 else text[:cut]).splitlines()


def rust_files() -> list[Path]:
    return [
        p for src in SOURCES for p in sorted(src.rglob("*.rs")) if not p.stem.endswith("_tests")
    ]


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    lines, found = logic_lines(path), []
    for i, line in enumerate(lines):
        match = FN.match(line)
        if not match or line.rstrip().endswith(";"):
            continue
        depth, end, opened = 0, i, False
        for end in range(i, len(lines)):
            depth += lines[end].count("{") - lines[end].count("}")
            opened = opened or "{" in lines[end]
            if opened and depth <= 0:
                break
        named_hot = any("hot path" in above.lower() for above in lines[max(0, i - 6) : i])
        if end - i + 1 > MAX_LINES and not named_hot:
            found.append(f"{path.relative_to(root)}:{i + 1}: fn {match.group(6)}, {end - i + 1}")
    return found


def undocumented_fields(path: Path, root: Path = ROOT) -> list[str]:
    lines, found, in_struct = logic_lines(path), [], False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if STRUCT.match(line):
            in_struct = True
        elif in_struct and stripped.startswith("}"):
            in_struct = False
        elif in_struct and FIELD.match(line):
            above = i - 1
            while above >= 0 and lines[above].strip().startswith("#["):
                above -= 1
            if not lines[above].strip().startswith("///"):
                found.append(f"{path.relative_to(root)}:{i + 1}: {stripped}")
    return found


def test_no_function_over_60_lines_outside_a_named_hot_path():
    assert rust_files(), "no Rust sources found"
    found = [f for path in rust_files() for f in long_functions(path)]
    assert found == [], "split these, or name them a hot path in their doc comment"


def test_every_struct_field_says_why_it_exists():
    found = [f for path in rust_files() for f in undocumented_fields(path)]
    assert found == [], "give each a /// line"


def test_the_checks_can_fail(tmp_path):
    sample = tmp_path / "sample.rs"
    body = "\n".join(f"    let x{i} = {i};" for i in range(MAX_LINES))
    sample.write_text(f"struct S {{\n    bare: u8,\n}}\n\nfn long() {{\n{body}\n}}\n")
    assert len(long_functions(sample, tmp_path)) == 1
    assert undocumented_fields(sample, tmp_path) == ["sample.rs:2: bare: u8,"]
