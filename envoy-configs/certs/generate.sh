#!/usr/bin/env bash
# Regenerates the EXAMPLE-ONLY mesh CA and certificates used by bookinfo-waypoint.yaml's mTLS
# listener. Never use these keys outside local experiments. Needs the openssl CLI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
days=3650
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days $days \
    -subj "/O=waypoint example/CN=example mesh CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
issue() { # name uri_san
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/O=waypoint example/CN=$1" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=URI:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days $days \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue waypoint spiffe://cluster.local/ns/bookinfo/sa/waypoint
issue sleep spiffe://cluster.local/ns/bookinfo/sa/sleep
issue notsleep spiffe://cluster.local/ns/bookinfo/sa/notsleep
issue curl spiffe://cluster.local/ns/default/sa/curl
rm -f ca.srl
