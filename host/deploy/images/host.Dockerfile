# The waypoint image, host mode: the `waypoint` binary (standalone HBONE waypoint, and the
# `waypoint controller`) on a minimal non-root base. Build from the repository root:
#   docker build -f host/deploy/images/host.Dockerfile -t waypoint:dev .
# Toolchain as rust-toolchain.toml pins it.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p waypoint-cli --bin waypoint \
 && install -D -m 0755 target/release/waypoint /out/waypoint

# glibc + libgcc only (the binary links nothing else: rustls with ring, no OpenSSL).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/waypoint /usr/local/bin/waypoint
# The waypoint pods run as 1337 (Istio's proxy uid, set by the controller's pod spec); the
# image's own default is distroless' nonroot (65532). Never root.
USER 65532:65532
EXPOSE 15008 15020 15021
ENTRYPOINT ["/usr/local/bin/waypoint"]
CMD ["--help"]
