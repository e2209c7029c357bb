# waypoint — the two commands a new machine needs: `make demo` and `make test`.
# Everything they need is installed by the targets themselves (idempotent).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build test demo bench lint fmt deps check-core-deps unit e2e clean

all: build

build:
	$(CARGO) build --workspace

## Install what the tests need (idempotent): rustfmt/clippy come with the toolchain.
deps:
	@scripts/install-deps.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check-core-deps:
	scripts/check-core-deps.sh

## Every test: lint, the core's dependency rule, unit tests, scenario suite, e2e tests.
test: deps lint check-core-deps
	CARGO_TARGET_DIR=target/envoy-module $(CARGO) build -p waypoint-envoy --features test-panic
	$(CARGO) test --workspace --no-fail-fast

## A complete local mesh with no cluster (issue 4 builds it).
demo: deps
	@scripts/demo.sh

## Benchmarks (reported, never asserted).
bench:
	$(CARGO) bench -p waypoint-benches

clean:
	$(CARGO) clean
