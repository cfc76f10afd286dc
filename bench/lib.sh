# Pieces the gateway benchmarks share; `source bench/lib.sh` from the repository's root.

# Servers started with `&` go in `started`; `trap cleanup EXIT` stops them and removes $tmp.
started=()
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "${tmp:?}"
}

# apt_install PACKAGE... : installs Debian packages without letting them start a service (an
# nginx on port 80, a Redis on 6379), unless the command named by the first is already there.
apt_install() {
  command -v "${APT_COMMAND:-$1}" >/dev/null 2>&1 && return 0
  local added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  apt-get update -qq
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || status=$?
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  return "$status"
}

# new_api_key HANGAR DIR : a key for tenant `bench` from `hangar gateway keygen`; sets `key` (to
# send) and `key_entry` (its `auth.apiKeys` entry, indented for the configuration).
new_api_key() {
  key=$("$1" gateway keygen --tenant bench --id bench-key 2> "$2/keygen.txt")
  key_entry=$(sed -n '/^- id:/,$p' "$2/keygen.txt" | sed 's/^/    /')
}

# gateway_yaml LISTEN UPSTREAM AUDIT_DIR : the configuration of a gateway at LISTEN with tenant
# `bench` (key `key_entry`, from new_api_key) and model `bench-model` at UPSTREAM (host:port), on
# standard output. GW_TENANT: the tenant's lines besides its models (indented four spaces;
# default injection off); GW_LIMITS: lines under `limits` besides `drain`; GW_REDACT: the kinds
# redacted (default none); GW_ADMIN: an operator address.
gateway_yaml() {
  cat <<YAML
listen: $1
${GW_ADMIN:+adminListen: $GW_ADMIN}
auth:
  apiKeys:
$key_entry
tenants:
  bench:
    models: [bench-model]
${GW_TENANT:-    injection: "off"}
models:
  bench-model:
    versions:
      - {name: v1, url: "http://$2", weight: 100}
limits:
  drain: 2s
${GW_LIMITS:-}
guards:
  redact: ${GW_REDACT:-[]}
audit:
  dir: $3
  retentionDays: 1
YAML
}

# wait_for_line LOG PATTERN [SECONDS] : waits until LOG holds PATTERN (10 s at most by default);
# says so and shows LOG otherwise.
wait_for_line() {
  local log="$1" pattern="$2" tries=$(( ${3:-10} * 10 ))
  for _ in $(seq "$tries"); do
    grep -q "$pattern" "$log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "not ready after ${3:-10} s: $log" >&2
  cat "$log" >&2
  return 1
}

# write_nginx_conf DIR WORKERS UPSTREAM_PORT LISTEN_PORT : nginx as a plain reverse proxy to the
# fake model server, keep-alive on both sides, its access log on (the gateway writes its audit
# log), everything it writes under DIR.
write_nginx_conf() {
  local dir="$1" workers="$2" upstream="$3" listen="$4"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
user root;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  upstream fake {
    server 127.0.0.1:$upstream;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$listen;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
}
