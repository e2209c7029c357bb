#!/usr/bin/env bash
# Installs what `make test` and `make demo` need, idempotently: the pinned Rust toolchain's
# components. Adapters add their own steps here (Envoy from PyPI, load tools from Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
# rust-toolchain.toml pins the version; make sure rustfmt and clippy are present.
for c in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
    rustup component add "$c"
  fi
done
echo "deps: ok"
