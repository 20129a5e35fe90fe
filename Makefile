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

.PHONY: all build run test lint rust-test py-test apt-tools bench load docs fuzz clean

all: build

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) requirements-dev.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# CI (CI=true) tests the code, not the optimiser: fat LTO and one codegen unit (the release
# profile, for benchmarks and users) add minutes to a build the tests do not need them in.
ifdef CI
export CARGO_PROFILE_RELEASE_LTO := false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS := 16
endif

# Builds the extension in release mode and installs it into .venv in place.
build: $(STAMP)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --release --quiet

run: build
	$(VENV)/bin/ferricorn --bind 127.0.0.1:8000 examples.hello:app

lint: $(STAMP)
	cargo fmt --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests examples benches
	$(VENV)/bin/ruff format --check python tests examples benches

rust-test: $(STAMP) apt-tools
	cargo test --workspace --quiet

# System programs the end-to-end tests drive, from Debian: in CI (root, CI=true) each one
# missing is installed with apt-get; elsewhere a test whose program is absent skips.
APT_TOOLS := prometheus haproxy openssl nginx
apt-tools:
	@if [ -n "$$CI" ]; then for t in $(APT_TOOLS); do \
	    command -v $$t >/dev/null || { apt-get update -qq && apt-get install -y -qq $$t; } || exit 1; \
	done; fi

# Two test processes (pytest-xdist), one per core: the end-to-end tests mostly wait on
# sockets and servers, and halve the suite's time (about 14 to 7 minutes here). Each has
# a HOME of its own (tests/conftest.py), so servers' default control sockets never meet.
py-test: build apt-tools
	$(PY) -m pytest -q -n 2 tests

test: lint rust-test py-test

# Criterion micro-benchmarks: the HTTP crate's parser and encoder, then environ building.
bench: $(STAMP)
	cargo bench -p ferricorn-http --bench http
	cargo bench -p ferricorn --bench parse

# Regenerates the settings table of docs/settings.md from the OPTIONS table of
# src/config/options.rs.
docs: build
	$(PY) -m ferricorn._docs docs/settings.md

# Runs each cargo-fuzz target of crates/ferricorn-http/fuzz for FUZZ_SECONDS
# (docs/fuzzing.md), one after the other, then minimizes its corpus. Needs the nightly
# toolchain; installs cargo-fuzz if missing. No Python is involved: the crate has no pyo3.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := head chunked split encode proxy uwsgi websocket handshake
FUZZ_FLAGS ?=
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	cd crates/ferricorn-http/fuzz && for t in $(FUZZ_TARGETS); do \
	    mkdir -p corpus/$$t && \
	    cargo +nightly fuzz run $$t corpus/$$t seeds/$$t $$(ls -d regressions/$$t 2>/dev/null) -- \
	        -max_total_time=$(FUZZ_SECONDS) -max_len=20000 -print_final_stats=1 $(FUZZ_FLAGS) \
	    && cargo +nightly fuzz cmin $$t corpus/$$t -- -max_len=20000 || exit 1; \
	done

load: build
	$(PY) benches/load.py --markdown

clean:
	rm -rf target $(VENV)
