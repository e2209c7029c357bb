# benches/envoy/upstream.sh — sourced by run.sh and instructions.sh: the nginx config of the
# bench upstreams (one worker; 127.0.0.1:18081 answers as reviews v1, :18082 as v2, 128-byte body).

bench_body() { local s="reviews-$1 "; while [ ${#s} -lt 127 ]; do s+=x; done; printf '%s\\n' "$s"; }

# write_nginx_conf RUN_DIR: writes RUN_DIR/nginx.conf (temp files under RUN_DIR/nginx-tmp).
write_nginx_conf() {
  mkdir -p "$1/nginx-tmp"
  cat >"$1/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $1/nginx-tmp/body;
  proxy_temp_path $1/nginx-tmp/proxy;
  fastcgi_temp_path $1/nginx-tmp/fastcgi;
  uwsgi_temp_path $1/nginx-tmp/uwsgi;
  scgi_temp_path $1/nginx-tmp/scgi;
  default_type text/plain;
  server { listen 127.0.0.1:18081; location / { return 200 "$(bench_body v1)"; } }
  server { listen 127.0.0.1:18082; location / { return 200 "$(bench_body v2)"; } }
}
EOF
}
