#!/usr/bin/env bash
# Where the gateway's CPU goes against nginx's: user-space and kernel time per request
# (utime and stime from /proc/PID/stat over 4 s of a closed loop, 64 connections, 64-byte
# prompts) for the gateway (guards off), the bare proxy on its HTTP stack, and nginx, each
# pinned to CPU 0 with the load generator and its fake model server on CPU 1. Run
# bench/gateway.sh once first (it builds the binaries and installs nginx).
#
# usage: ROUNDS="1 2 3" bench/cpu_split.sh     env: PROMPT=64 GUARDS=off SECS=8
set -u
cd "$(dirname "$0")/.."
source bench/lib.sh
H=${H:-target/release/hangar}; B=target/release/examples/bare_proxy
L=target/release/loadgen
PROMPT=${PROMPT:-64}; GUARDS=${GUARDS:-off}; WINDOW=4
tmp=$(mktemp -d); trap cleanup EXIT; up=18501; gw=18502; ad=18503; np=18504; bp=18505
new_api_key "$H" "$tmp"
if [ "$GUARDS" = on ]; then inj=log; red="[card_number, iban, provider_key, private_key, bearer_token, email, phone]"; else inj=off; red="[]"; fi
GW_ADMIN=127.0.0.1:$ad GW_TENANT="    injection: $inj" GW_REDACT=$red \
  gateway_yaml 127.0.0.1:$gw 127.0.0.1:$up "$tmp/audit" > $tmp/g.yaml
write_nginx_conf "$tmp/nginx" 1 "$up" "$np"
taskset -c 0 $H gateway run --config $tmp/g.yaml 2> $tmp/gw.log & gp=$!; started+=($gp)
taskset -c 0 $B 127.0.0.1:$bp http://127.0.0.1:$up 2> $tmp/bare.log & bpid=$!; started+=($bpid)
taskset -c 0 nginx -p $tmp/nginx -c $tmp/nginx/nginx.conf -g 'daemon off;' 2>$tmp/err & np_pid=$!; started+=($np_pid)
sleep 1.5
wpid=$(pgrep -P $np_pid | head -1)
cpu() { awk '{print $14, $15}' /proc/$1/stat; }
for r in ${ROUNDS:-1 2}; do
for pair in "gateway:$gw:$gp" "bare:$bp:$bpid" "nginx:$np:$wpid"; do
  IFS=: read name port pid <<< "$pair"
  taskset -c 1 $L --addr 127.0.0.1:$port --serve-upstream 127.0.0.1:$up --key "$key" --prompt-bytes $PROMPT max --connections 64 --duration ${SECS:-8} --warmup 2 > $tmp/run.json &
  lp=$!
  sleep 3; read u0 s0 <<< "$(cpu $pid)"; sleep $WINDOW; read u1 s1 <<< "$(cpu $pid)"
  wait $lp
  python3 - "$name" $u0 $s0 $u1 $s1 $tmp/run.json "$(getconf CLK_TCK)" $WINDOW <<'P'
import json,sys
name,u0,s0,u1,s1,f,tck,window=sys.argv[1],*map(int,sys.argv[2:6]),sys.argv[6],float(sys.argv[7]),float(sys.argv[8])
r=json.load(open(f)); rate=r['rate']
us=(u1-u0)/tck/window; ss=(s1-s0)/tck/window
print(f"{name:8} {rate:8.0f} req/s  user {us:.2f} sys {ss:.2f} cores  user/req {us/rate*1e6:.1f} us  sys/req {ss/rate*1e6:.1f} us")
P
done; done
