#!/usr/bin/env python3
"""Edit a rendered anchor waypoint config (../shared/bench/configs/anchor-waypoint.yaml) in place
for the floor variants of instructions.sh; fails loudly when the text it edits is not there.

  noop   a dynamic-module filter (libwaypoint.so built with --features bench-noop: its request
         hook returns at once) in front of the RBAC filter: what the module mechanism costs
  retry  Istio's default retry policy (pilot's retry.DefaultPolicy: 2 retries on
         connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,
         previous_hosts, 5 host selection attempts) on the weighted route, as every Istio
         waypoint route has it and the generated bootstrap writes it

usage: anchor-edit.py FILE noop|retry...
"""
import sys

NOOP = """- name: waypoint
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
    dynamic_module_config: {name: waypoint}
    filter_name: waypoint
    filter_config:
      "@type": type.googleapis.com/google.protobuf.Struct
      value:
        waypoint: default/waypoint
        config_inline: |
          apiVersion: gateway.networking.k8s.io/v1
          kind: Gateway
          metadata: {name: waypoint, namespace: default}
          spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
"""

RETRY = """retry_policy:
  num_retries: 2
  retry_on: connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes
  host_selection_retry_max_attempts: 5
  retry_host_predicate:
  - name: envoy.retry_host_predicates.previous_hosts
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
"""


def insert_before(text, anchor, block):
    """Insert `block` before the line holding `anchor`, at that line's indentation."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if anchor in line:
            pad = line[: len(line) - len(line.lstrip())]
            new = [pad + b + "\n" for b in block.rstrip("\n").split("\n")]
            return "".join(lines[:i] + new + lines[i:])
    sys.exit(f"anchor-edit.py: {anchor!r} not found")


def main():
    path, edits = sys.argv[1], sys.argv[2:]
    text = open(path).read()
    for e in edits:
        if e == "noop":
            text = insert_before(text, "- name: envoy.filters.http.rbac", NOOP)
        elif e == "retry":
            text = insert_before(text, "weighted_clusters:", RETRY)
        else:
            sys.exit(f"anchor-edit.py: unknown edit {e}")
    open(path, "w").write(text)


if __name__ == "__main__":
    main()
