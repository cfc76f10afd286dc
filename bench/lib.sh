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
