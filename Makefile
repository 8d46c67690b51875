# asset-inventory: the two commands a user needs are `make run` and `make test`.
# Both install what they need on a fresh Debian machine (as root, or with sudo).

SHELL := /bin/bash
.DEFAULT_GOAL := help

export CARGO_TARGET_DIR ?= $(CURDIR)/target
DUCKDB_DIR := $(CURDIR)/.deps/duckdb
export DUCKDB_LIB_DIR := $(DUCKDB_DIR)
export LD_LIBRARY_PATH := $(DUCKDB_DIR)$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
# The HTTP load generator of `make bench-http` (crates.io), installed into .deps/oha when missing.
OHA_VERSION := 1.16.0
OHA_DIR := $(CURDIR)/.deps/oha
OHA ?= $(OHA_DIR)/bin/oha
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO_TEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo "cargo nextest run --workspace --no-fail-fast" || echo "cargo test --workspace --no-fail-fast")

.PHONY: help run test ui-deps ui-screenshots bench bench-reads bench-evidence bench-http bench-soak bench-console bench-cluster bench-collectors schemas deps system-deps duckdb oha py-deps build release local lint fmt clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: system-deps duckdb local ## run the whole pipeline locally (NATS, Prometheus, API on 127.0.0.1:8080, collectors)
	$(CARGO_TARGET_DIR)/local/inventory up

test: system-deps duckdb py-deps ui-deps ## run every test (fmt, clippy, unit, HTTP, integration with real NATS/Prometheus, interop, the console in headless Chromium)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	INVENTORY_TEST_PYTHON=$(PY) $(CARGO_TEST)
	$(MAKE) deploy-check

deploy-check: system-deps duckdb ## validate Dockerfile, compose, k8s manifests, policies, alerts, workflows, NATS permissions, k6 smoke
	scripts/check-deploy.sh

bench: system-deps duckdb ## replay 1,000,000 events from JetStream into DuckDB vs a raw consume, then read latencies, then signed checkpoints (see BENCHMARKS.md)
	cargo bench -p inventory-projector --bench replay
	cargo bench -p inventory-query-api --bench reads
	cargo bench -p asset-inventory --bench evidence

bench-reads: system-deps duckdb ## as_of, diff, history and changes latency over 1,000,000 events (see BENCHMARKS.md)
	cargo bench -p inventory-query-api --bench reads

bench-evidence: system-deps duckdb ## signed checkpoints: checkpoint and verify --checkpoints over 1,000,000 events vs a raw consume (see BENCHMARKS.md)
	cargo bench -p asset-inventory --bench evidence

bench-http: system-deps duckdb oha ## the real `inventory serve` under oha, per route, over 1,000,000 and 100,000 events, also while ingesting (see BENCHMARKS.md)
	OHA=$(OHA) cargo bench -p asset-inventory --bench http

bench-soak: system-deps duckdb oha ## 40 minutes of `inventory serve` under 200 req/s of mixed reads, ingest and 50 SSE clients: RSS flat over the last 30, zero errors (see BENCHMARKS.md)
	OHA=$(OHA) cargo bench -p asset-inventory --bench soak

bench-console: system-deps duckdb ## the console's page weight and render time: inventory over 100,000 assets, an asset with 100 versions (see BENCHMARKS.md)
	cargo bench -p asset-inventory --bench console

bench-cluster: system-deps duckdb ## sweep and replay throughput with the stream at 3 replicas on a 3-node cluster vs 1 on one server, same run (see BENCHMARKS.md)
	cargo bench -p asset-inventory --bench cluster

bench-collectors: system-deps duckdb py-deps ## sweep 5,000 AWS accounts from moto (see BENCHMARKS.md)
	INVENTORY_TEST_PYTHON=$(PY) AWS_BENCH_ACCOUNTS=5000 cargo bench -p inventory-producers --bench aws_sweep --profile dev

schemas: duckdb ## regenerate schemas/json from the Rust types
	INVENTORY_WRITE_SCHEMAS=1 cargo test -p inventory-schemas committed_json_schemas

release: duckdb
	cargo build --release --bin inventory

# `make run`'s build: the `local` profile (Cargo.toml), quicker to build cold than `release`.
local: duckdb
	cargo build --profile local --bin inventory

build: duckdb
	cargo build --workspace --all-targets

lint: duckdb
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# --- set-up -----------------------------------------------------------------------------------
APT_UPDATED := $(CURDIR)/.deps/.apt-updated
system-deps: ## install nats-server, prometheus, npm, chromium and python venv support from Debian when missing
	@command -v cargo >/dev/null || { echo "cargo is required: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
	@missing=""; \
	command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

duckdb: $(DUCKDB_DIR)/libduckdb.so
$(DUCKDB_DIR)/libduckdb.so:
	scripts/fetch-libduckdb.sh $(DUCKDB_DIR)

oha:
	@command -v "$(OHA)" >/dev/null || env -u CARGO_TARGET_DIR cargo install oha --version $(OHA_VERSION) --locked --root $(OHA_DIR)

# The console's end-to-end test (tests/ui.rs) drives Debian's chromium with playwright-core, pinned
# in tests/ui/package-lock.json. Building the binary needs no Node: the console's assets are
# embedded files.
ui-deps: system-deps tests/ui/node_modules/.installed
tests/ui/node_modules/.installed: tests/ui/package.json tests/ui/package-lock.json
	cd tests/ui && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ui-screenshots: system-deps duckdb ui-deps ## retake the console's screenshots in docs/ui/ (docs/ui.md) with its end-to-end test
	INVENTORY_UI_SCREENSHOTS=docs/ui cargo test -p asset-inventory --test ui

py-deps: $(VENV)/.installed
$(VENV)/.installed: tests/interop/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
	touch $@

clean:
	cargo clean
	rm -rf .data
