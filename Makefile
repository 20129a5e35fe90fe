# ferricorn's two commands: `make run` and `make test`. Everything they need
# beyond the Rust toolchain and Python 3.11 is installed into .venv here.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Every cargo command builds pyo3 against .venv's interpreter (not the system libpython),
# and the same one each time, so pyo3 is not rebuilt between them.
export PYO3_PYTHON := $(CURDIR)/$(PY)

.PHONY: all build run test lint rust-test py-test bench load docs clean

all: build

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) requirements-dev.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Builds the extension in release mode and installs it into .venv in place.
build: $(STAMP)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --release --quiet

run: build
	$(VENV)/bin/ferricorn --bind 127.0.0.1:8000 examples.hello:app

lint: $(STAMP)
	cargo fmt --check
	cargo clippy --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests examples benches
	$(VENV)/bin/ruff format --check python tests examples benches

rust-test: $(STAMP)
	cargo test --quiet

py-test: build
	$(PY) -m pytest -q tests

test: lint rust-test py-test

bench: $(STAMP)
	cargo bench --bench parse

# Regenerates the settings table of docs/settings.md from src/config.rs.
docs: build
	$(PY) -m ferricorn._docs docs/settings.md

load: build
	$(PY) benches/load.py --markdown

clean:
	rm -rf target $(VENV)
