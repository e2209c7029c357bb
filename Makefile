# waypoint — the commands a new machine needs: `make install`, `make demo`, `make test`,
# `make envoy`. Everything they need is installed by the targets themselves (idempotent).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build install envoy test demo bench lint fmt deps check-core-deps unit e2e clean fuzz

all: build

build:
	$(CARGO) build --workspace

## The `waypoint` command into ~/.cargo/bin (on PATH with rustup), release build.
install:
	$(CARGO) install --locked --path host/cli

## Stock Envoy with our module: libwaypoint.so (release) and the pinned Envoy; prints how to
## run it.
envoy:
	$(CARGO) build --release -p waypoint-envoy
	@envoy_bin="$$(scripts/install-envoy.sh)" && \
	target_dir="$$($(CARGO) metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')" && \
	echo "envoy: built $$target_dir/release/libwaypoint.so; to run Envoy with it:" && \
	echo "  export ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$$target_dir/release" && \
	echo "  $$envoy_bin -c envoy.yaml   # envoy.yaml from: waypoint bootstrap --config examples/bookinfo --certs envoy-configs/certs"

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
	CARGO_TARGET_DIR=target/envoy-module $(CARGO) build --release --target wasm32-wasip1 -p waypoint-wasm
	$(CARGO) test --workspace --no-fail-fast

## A complete local mesh with no cluster; needs only Rust. Flags for `waypoint demo`:
## make demo DEMO_ARGS='--mesh-port 25008'
DEMO_ARGS ?=
demo:
	@scripts/demo.sh $(DEMO_ARGS)

## Fuzzing: each target of tests/fuzz for FUZZ_SECONDS with cargo-fuzz (libFuzzer). The
## stable toolchain has no sanitizers: `-s none`, and RUSTC_BOOTSTRAP for cargo-fuzz's flags.
## New inputs go to target/fuzz-corpus/<target>; findings to tests/fuzz/artifacts/<target>.
## `make test` replays the committed seeds (tests/fuzz/corpus) through the same bodies.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= manifests normalize_path connect_authority proxy_v2 sniff
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$t && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tests/fuzz --features libfuzzer -s none \
			$$t target/fuzz-corpus/$$t tests/fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 || exit 1; \
	done

## Benchmarks (reported, never asserted).
bench:
	$(CARGO) bench -p waypoint-benches

clean:
	$(CARGO) clean
