#!/usr/bin/env python3
"""benches/envoy/wasm-config.py MODULE_YAML WASM_FILE CONFIG_DIR: the module variant's Envoy
config with the proxy-wasm filter (filter/wasm) in the module's place, on Envoy's V8 runtime,
and the manifests of CONFIG_DIR inline (a Wasm VM has no file system). Prints JSON (valid YAML).
"""
import json
import pathlib
import sys

import yaml

module_yaml, wasm_file, config_dir = sys.argv[1:4]
boot = yaml.safe_load(pathlib.Path(module_yaml).read_text())
manifests = "".join(
    "---\n" + p.read_text()
    for p in sorted(pathlib.Path(config_dir).rglob("*"))
    if p.suffix in (".yaml", ".yml", ".json")
)
plugin = {
    "waypoint": "default/waypoint",
    "config_inline": manifests,
    # Plaintext listener: the principal is only in filter state, as in the module variant.
    "principal_from": "filter_state",
}
hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
for i, f in enumerate(hcm["http_filters"]):
    if f["name"] == "waypoint":
        hcm["http_filters"][i] = {"name": "waypoint", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "waypoint", "root_id": "waypoint",
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": json.dumps(plugin)},
                "vm_config": {"vm_id": "waypoint", "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": wasm_file}}}}}}
json.dump(boot, sys.stdout, indent=1)
