#!/usr/bin/env bash
# Edge cache hit throughput: `edgeswarm edge` against nginx (proxy_cache) and
# Varnish, each in front of the same `edgeswarm origin` on loopback, each
# pinned to one core while wrk runs on the other. See README.md beside this
# file for what is measured and how.
#
#   bench/edgecache/run.sh [--quick] [--runs N] [--duration S] [--out DIR]
#                          [--servers edge,nginx,varnish] [--sizes 1KiB,100KiB,1MiB,64MiB]
#                          [--profile edge[,nginx,varnish]] [--profile-sizes 1KiB,1MiB]
#                          [--bin PATH] [--sched rr|nice]
#                          [--nginx-sendfile on|off] [--server-cpu N] [--client-cpu N]
#                          [--no-install] [--keep-tmp]
#
# stdout: one JSON line per server x size (medians) and one summary line with
# the edge/nginx and edge/varnish ratios; a human table goes to stderr.
# Everything (per-run JSON, configs, logs, headers, profiles) goes to --out.
set -euo pipefail
# The whole script is one brace group, parsed before it runs: editing this
# file while it runs cannot change what the running instance executes.
# (SC2317: shellcheck takes the trap handlers for unreachable code.)
# shellcheck disable=SC2317
{
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

# ---------------------------------------------------------------- options
runs=3
duration=10
prime=2
out=""
servers="edge,nginx,varnish"
sizes="1KiB,100KiB,1MiB,64MiB"
profile=""
profile_sizes="1KiB,1MiB"
install=1
keep_tmp=0
server_cpu=0
client_cpu=1
base_port=18400
prebuilt=""
sched=rr
nginx_sendfile=on
rt_prio=10
nice_level=-10

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=1; duration=3; prime=1; shift ;;
    --runs) runs="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --servers) servers="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --profile-sizes) profile_sizes="$2"; shift 2 ;;
    --bin) prebuilt="$2"; shift 2 ;;
    --sched) sched="$2"; shift 2 ;;
    --nginx-sendfile) nginx_sendfile="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    --keep-tmp) keep_tmp=1; shift ;;
    --server-cpu) server_cpu="$2"; shift 2 ;;
    --client-cpu) client_cpu="$2"; shift 2 ;;
    --base-port) base_port="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

case "$sched" in rr|nice) ;; *) echo "run.sh: --sched $sched: want rr or nice" >&2; exit 2 ;; esac
[ "$server_cpu" != "$client_cpu" ] || { echo "run.sh: --server-cpu and --client-cpu must differ" >&2; exit 2; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$out" ] || out="bench/out/edgecache-$stamp"
mkdir -p "$out"/{logs,config,headers,profile}
out=$(cd "$out" && pwd)
IFS=, read -r -a server_list <<<"$servers"
IFS=, read -r -a size_list <<<"$sizes"
profile_list=()
[ -z "$profile" ] || IFS=, read -r -a profile_list <<<"$profile"

# fd 7 is the script's stderr: a trap can run while a command's stderr is
# redirected (wrk's timing), and its messages must still be seen.
exec 7>&2
log() { printf '[edgecache %s] %s\n' "$(date +%H:%M:%S)" "$*" >&7; }
die() { log "FATAL: $*"; exit 1; }

size_bytes() {
  case "$1" in
    1KiB) echo 1024 ;; 100KiB) echo 102400 ;; 1MiB) echo 1048576 ;; 64MiB) echo 67108864 ;;
    *KiB) echo $(( ${1%KiB} * 1024 )) ;;
    *MiB) echo $(( ${1%MiB} * 1048576 )) ;;
    *) die "size $1: want N KiB or N MiB" ;;
  esac
}

# Connections per object size: enough to keep one core busy with small
# objects, few for large ones so each transfer is not starved.
size_conns() {
  local b
  b=$(size_bytes "$1")
  if [ "$b" -le 16384 ]; then echo 64
  elif [ "$b" -le 262144 ]; then echo 32
  elif [ "$b" -le 4194304 ]; then echo 16
  else echo 4
  fi
}

# ---------------------------------------------------------------- install
need_pkgs=()
command -v nginx >/dev/null || need_pkgs+=(nginx)
command -v varnishd >/dev/null || need_pkgs+=(varnish)
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v taskset >/dev/null || need_pkgs+=(util-linux)
if [ "${#profile_list[@]}" -gt 0 ]; then
  command -v perf >/dev/null || need_pkgs+=(linux-perf)
  command -v strace >/dev/null || need_pkgs+=(strace)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  [ "$install" = 1 ] || die "missing ${need_pkgs[*]} and --no-install given"
  [ "$(id -u)" = 0 ] || die "missing ${need_pkgs[*]}: run as root or install them"
  log "installing ${need_pkgs[*]} from Debian"
  # Debian's postinst would start the packaged nginx and varnish services
  # (on :80 and :6081); nothing here uses them. Where no policy-rc.d exists,
  # one that refuses service starts is put in place for the install only.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  rc=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"; } >&2 || rc=$?
  [ "$made_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install ${need_pkgs[*]} failed"
fi
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server on one, load generator on the other)"

# ---------------------------------------------------------------- cleanup
tmp=$(mktemp -d /tmp/edgecache.XXXXXX)
started=()   # pids this script started (top of each server's process tree)

tree_pids() { # PID and all its descendants
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { q[1] = root; n = 1; for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] } }'
}

alive() { # PID: running and not a zombie waiting to be reaped
  local st
  st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

cleanup() {
  local rc=$? pid all=() t
  trap - EXIT INT TERM
  for pid in "${started[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    mapfile -t t < <(tree_pids "$pid")
    all+=("${t[@]}")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    local any=0
    for pid in "${all[@]}"; do alive "$pid" && any=1; done
    [ "$any" = 0 ] && break
    sleep 0.1
  done
  for pid in "${all[@]}"; do if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi; done
  wait 2>/dev/null || true
  if [ "$keep_tmp" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  [ "$rc" = 0 ] || log "failed (exit $rc); partial results in $out"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# pin CPU: sets PIN to the command prefix that runs a command pinned to CPU
# at the benchmark's priority ("${PIN[@]}" CMD &: chrt and taskset exec, so
# $! is the server itself and gets the TERM at cleanup). The
# machine is shared with CPU-heavy jobs: at normal priority every wake-up of
# a server or of wrk waits behind a neighbour's time slice (EEVDF protects the
# running slice even against nice -10), the servers then idle at 10-30 % CPU
# and the figures measure the neighbours. SCHED_RR (round robin, so wrk's
# timer thread and Varnish's and Go's threads still take turns) lets them run
# when they are ready; the kernel's RT throttling still leaves every core 5 %
# for other work. --sched nice uses nice -10 instead (gentler, noisier).
PIN=()
pin() {
  case "$sched" in
    rr) PIN=(chrt -r "$rt_prio" taskset -c "$1") ;;
    nice) PIN=(nice -n "$nice_level" taskset -c "$1") ;;
  esac
}
sched_desc() { if [ "$sched" = rr ]; then echo "chrt -r $rt_prio"; else echo "nice -n $nice_level"; fi; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port=$base_port
pick_port() {
  while ! port_free "$next_port"; do next_port=$((next_port + 1)); done
  echo "$next_port"
  next_port=$((next_port + 1))
}
wait_port() { # PORT PID NAME
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited at start; see $out/logs/"
    sleep 0.1
  done
  die "$3 not listening on 127.0.0.1:$1 after 15 s"
}

# cpu_sample PID: "pid ticks" (utime+stime) for PID and its descendants.
cpu_sample() {
  local p
  for p in $(tree_pids "$1"); do
    [ -r "/proc/$p/stat" ] || continue
    # Fields after the ")" that ends comm: state is 1st, utime 12th, stime 13th.
    awk -v pid="$p" '{ sub(/^.*\) /, ""); split($0, f, " "); print pid, f[12] + f[13] }' "/proc/$p/stat" 2>/dev/null || true
  done
}
# cpu_delta BEFORE AFTER: seconds used by the processes present in both.
clk_tck=$(getconf CLK_TCK)
cpu_delta() {
  awk -v hz="$clk_tck" 'NR == FNR { b[$1] = $2; next } ($1 in b) { d += $2 - b[$1] } END { printf "%.3f\n", d / hz }' "$1" "$2"
}
# core_sample: "cpuN task irq steal" ticks per core: task = user+nice+system,
# irq = irq+softirq (on loopback mostly the delivery of sent data to the
# receiving socket, run inside the sender's syscalls).
core_sample() { awk '/^cpu[0-9]/ { print $1, $2 + $3 + $4, $7 + $8, $9 }' /proc/stat; }
core_delta() { # BEFORE AFTER CORE FIELD(2=task,3=irq,4=steal) -> seconds
  awk -v c="cpu$3" -v f="$4" -v hz="$clk_tck" 'NR == FNR { b[$1] = $f; next } $1 == c { printf "%.3f\n", ($f - b[$1]) / hz }' "$1" "$2"
}

# ---------------------------------------------------------------- build and data
log "out: $out"
if [ -n "$prebuilt" ]; then
  # A binary built earlier (e.g. while the tree is mid-edit and does not build).
  cp "$prebuilt" "$tmp/edgeswarm"
  src_sha="prebuilt"
  log "using prebuilt $prebuilt"
else
  log "building edgeswarm"
  src_sha=$(find cmd internal -name '*.go' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  go build -buildvcs=false -o "$tmp/edgeswarm" ./cmd/edgeswarm || die "go build ./cmd/edgeswarm failed (tree mid-edit? --bin PATH takes a prebuilt binary)"
fi
bin="$tmp/edgeswarm"
bin_sha=$(sha256sum "$bin" | cut -c1-16)

mkdir -p "$tmp/www"
declare -A obj_sha
for s in "${size_list[@]}"; do
  b=$(size_bytes "$s")
  head -c "$b" /dev/urandom >"$tmp/www/obj-$s.bin"
  obj_sha[$s]=$(sha256sum "$tmp/www/obj-$s.bin" | cut -d' ' -f1)
done

# ---------------------------------------------------------------- origin
origin_port=$(pick_port)
taskset -c "$client_cpu" "$bin" --log-level warn origin --dir "$tmp/www" --listen "127.0.0.1:$origin_port" \
  --cache-control "public, max-age=3600" >"$out/logs/origin.log" 2>&1 &
origin_pid=$!
started+=("$origin_pid")
wait_port "$origin_port" "$origin_pid" origin
curl -s -D "$out/headers/origin-${size_list[0]}.txt" -o /dev/null "http://127.0.0.1:$origin_port/obj-${size_list[0]}.bin"
grep -qi '^cache-control: public, max-age=3600' "$out/headers/origin-${size_list[0]}.txt" ||
  die "origin does not send Cache-Control: public, max-age=3600"

declare -A port pid hit_hdr

# ---------------------------------------------------------------- nginx
start_nginx() {
  local d="$tmp/nginx" p aff=1 i
  p=$(pick_port)
  for ((i = 0; i < server_cpu; i++)); do aff="${aff}0"; done
  mkdir -p "$d"/{cache,temp/client,temp/proxy,temp/fastcgi,temp/uwsgi,temp/scgi}
  cat >"$d/nginx.conf" <<EOF
# Written by bench/edgecache/run.sh: a reverse-proxy cache tuned for cache hits.
user root;                      # only honoured when started as root; keeps the private temp dir readable
worker_processes 1;             # one core
worker_cpu_affinity $aff;       # binary mask, rightmost digit = cpu0
worker_rlimit_nofile 65536;
pid $d/nginx.pid;
error_log $out/logs/nginx-error.log warn;
events {
    worker_connections 4096;
    multi_accept on;
    use epoll;
}
http {
    access_log off;
    sendfile $nginx_sendfile;
    sendfile_max_chunk 2m;
    tcp_nopush off;             # on loopback (MSS ~64 KiB) TCP_CORK held the tail of 100 KiB responses ~40 ms
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;  # wrk's connections stay open, as they do on the edge and on Varnish
    open_file_cache max=1000 inactive=60s;  # also caches proxy_cache file descriptors
    open_file_cache_valid 60s;
    client_body_temp_path $d/temp/client;
    proxy_temp_path $d/temp/proxy;
    fastcgi_temp_path $d/temp/fastcgi;
    uwsgi_temp_path $d/temp/uwsgi;
    scgi_temp_path $d/temp/scgi;
    default_type application/octet-stream;

    upstream origin {
        server 127.0.0.1:$origin_port;
        keepalive 32;
    }
    proxy_cache_path $d/cache levels=1:2 keys_zone=edge:16m max_size=1g inactive=1h use_temp_path=off;

    server {
        listen 127.0.0.1:$p backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;            # freshness from the origin's Cache-Control
            proxy_cache_lock on;
            proxy_buffering on;
            add_header X-Cache-Status \$upstream_cache_status always;
        }
    }
}
EOF
  cp "$d/nginx.conf" "$out/config/nginx.conf"
  printf '%s taskset -c %s nginx -p %q -c %q -e %q -g %q\n' "$(sched_desc)" "$server_cpu" "$d/" "$d/nginx.conf" \
    "$out/logs/nginx-error.log" 'daemon off; master_process on;' >"$out/config/nginx.cmdline"
  pin "$server_cpu"
  "${PIN[@]}" nginx -p "$d/" -c "$d/nginx.conf" -e "$out/logs/nginx-error.log" \
    -g 'daemon off; master_process on;' >"$out/logs/nginx.out" 2>&1 &
  pid[nginx]=$!
  started+=("${pid[nginx]}")
  port[nginx]=$p
  hit_hdr[nginx]='^x-cache-status: hit'
  wait_port "$p" "${pid[nginx]}" nginx
}

# ---------------------------------------------------------------- varnish
varnish_params=(-p thread_pools=1 -p thread_pool_min=128 -p thread_pool_max=1000 -p thread_pool_timeout=300)
start_varnish() {
  local d="$tmp/varnish" p
  p=$(pick_port)
  mkdir -p "$d"
  cat >"$d/default.vcl" <<EOF
vcl 4.1;
# Written by bench/edgecache/run.sh. Freshness from the origin's Cache-Control
# (built-in vcl_backend_response); only a hit marker is added.
backend origin {
    .host = "127.0.0.1";
    .port = "$origin_port";
}
sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
EOF
  cp "$d/default.vcl" "$out/config/varnish.vcl"
  local cmd=(varnishd -F -j none -n "$d/work" -a "127.0.0.1:$p" -T 127.0.0.1:0 -f "$d/default.vcl"
    -s "malloc,512m" "${varnish_params[@]}")
  { printf '%s taskset -c %s' "$(sched_desc)" "$server_cpu"; printf ' %q' "${cmd[@]}"; echo; } >"$out/config/varnish.cmdline"
  pin "$server_cpu"
  "${PIN[@]}" "${cmd[@]}" >"$out/logs/varnish.log" 2>&1 &
  pid[varnish]=$!
  started+=("${pid[varnish]}")
  port[varnish]=$p
  hit_hdr[varnish]='^x-cache: hit'
  wait_port "$p" "${pid[varnish]}" varnish
}

# ---------------------------------------------------------------- edge
start_edge() {
  local p
  p=$(pick_port)
  local cmd=("$bin" --log-level warn edge --origin "http://127.0.0.1:$origin_port" --listen "127.0.0.1:$p"
    --cache-dir "$tmp/edge-cache" --cache-size 1GiB)
  { printf 'GOMAXPROCS=1 %s taskset -c %s' "$(sched_desc)" "$server_cpu"; printf ' %q' "${cmd[@]}"; echo; } >"$out/config/edge.cmdline"
  pin "$server_cpu"
  GOMAXPROCS=1 "${PIN[@]}" "${cmd[@]}" >"$out/logs/edge.log" 2>&1 &
  pid[edge]=$!
  started+=("${pid[edge]}")
  port[edge]=$p
  hit_hdr[edge]='^x-cache: hit'
  wait_port "$p" "${pid[edge]}" edge
}

for s in "${server_list[@]}"; do
  case "$s" in
    edge) start_edge ;; nginx) start_nginx ;; varnish) start_varnish ;;
    *) die "unknown server $s (want edge, nginx, varnish)" ;;
  esac
  log "$s on 127.0.0.1:${port[$s]} (pid ${pid[$s]}), pinned to cpu $server_cpu"
done

# ---------------------------------------------------------------- warm and verify
for s in "${server_list[@]}"; do
  for z in "${size_list[@]}"; do
    url="http://127.0.0.1:${port[$s]}/obj-$z.bin"
    hdr="$out/headers/$s-$z.txt"
    hit=0
    for _ in $(seq 20); do
      curl -s --max-time 60 -D "$hdr" -o "$tmp/body" "$url" || true
      if grep -qiE "${hit_hdr[$s]}" "$hdr"; then hit=1; break; fi
      sleep 0.2
    done
    [ "$hit" = 1 ] || die "$s never answered $z from its cache; last headers in $hdr"
    got=$(sha256sum "$tmp/body" | cut -d' ' -f1)
    [ "$got" = "${obj_sha[$z]}" ] || die "$s: body of $z differs from the origin's (sha256 $got, want ${obj_sha[$z]})"
  done
  log "$s: every object is a cache hit and byte-identical to the origin's (sha256)"
done

# ---------------------------------------------------------------- load
wrk_lua="$tmp/report.lua"
cat >"$wrk_lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"errors":%d,"err_status":%d}\n',
    summary.requests, summary.bytes, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout, e.status))
end
EOF

runs_file="$out/runs.jsonl"
: >"$runs_file"

# measure ROUND SERVER SIZE DURATION -> appends a run line (ROUND 0 = priming, not kept)
measure() {
  local round=$1 s=$2 z=$3 d=$4 b c url wout
  b=$(size_bytes "$z")
  c=$(size_conns "$z")
  url="http://127.0.0.1:${port[$s]}/obj-$z.bin"
  wout="$tmp/wrk.out"
  cpu_sample "${pid[$s]}" >"$tmp/cpu0"
  cpu_sample "$origin_pid" >"$tmp/ocpu0"
  core_sample >"$tmp/core0"
  local TIMEFORMAT='%3U %3S %3R'
  pin "$client_cpu"
  { time "${PIN[@]}" wrk -t1 -c"$c" -d"${d}s" --timeout 30s --latency -s "$wrk_lua" "$url" >"$wout" 2>&1; } 2>"$tmp/wrk.time"
  core_sample >"$tmp/core1"
  cpu_sample "${pid[$s]}" >"$tmp/cpu1"
  cpu_sample "$origin_pid" >"$tmp/ocpu1"
  [ "$round" = 0 ] && return 0
  local w scpu ocpu ccpu wall s_task s_irq c_task c_irq st
  w=$(sed -n 's/^WRKJSON //p' "$wout")
  [ -n "$w" ] || die "wrk gave no result for $s $z: $(cat "$wout")"
  cp "$wout" "$out/logs/wrk-$s-$z-r$round.txt"
  scpu=$(cpu_delta "$tmp/cpu0" "$tmp/cpu1")
  ocpu=$(cpu_delta "$tmp/ocpu0" "$tmp/ocpu1")
  ccpu=$(awk '{ printf "%.3f\n", $1 + $2 }' "$tmp/wrk.time")
  wall=$(awk '{ print $3 }' "$tmp/wrk.time")
  s_task=$(core_delta "$tmp/core0" "$tmp/core1" "$server_cpu" 2)
  s_irq=$(core_delta "$tmp/core0" "$tmp/core1" "$server_cpu" 3)
  c_task=$(core_delta "$tmp/core0" "$tmp/core1" "$client_cpu" 2)
  c_irq=$(core_delta "$tmp/core0" "$tmp/core1" "$client_cpu" 3)
  st=$(awk -v hz="$clk_tck" 'NR == FNR { b[$1] = $4; next } { d += $4 - b[$1] } END { printf "%.3f\n", d / hz }' "$tmp/core0" "$tmp/core1")
  jq -cn --argjson w "$w" --arg s "$s" --arg z "$z" --argjson b "$b" --argjson c "$c" --argjson r "$round" \
    --argjson d "$d" --argjson scpu "$scpu" --argjson ocpu "$ocpu" --argjson ccpu "$ccpu" \
    --argjson s_task "$s_task" --argjson s_irq "$s_irq" --argjson c_task "$c_task" --argjson c_irq "$c_irq" \
    --argjson st "$st" --argjson wall "$wall" '
    ($w.duration_us / 1e6) as $t | ($w.requests * $b) as $body |
    # CPU is sampled around the whole wrk process (connect to exit), so
    # utilisation is over its wall time; the few ms around the timed window
    # are in cpu_s_per_gb too, for every server alike.
    {type: "run", round: $r, server: $s, size: $z, size_bytes: $b, conns: $c, duration_s: $d,
     requests: $w.requests, errors: $w.errors,
     req_s: ($w.requests / $t), gbit_s: ($body * 8 / $t / 1e9), wire_gbit_s: ($w.bytes * 8 / $t / 1e9),
     p50_ms: ($w.p50_us / 1000), p99_ms: ($w.p99_us / 1000),
     wrk_wall_s: $wall, server_cpu_s: $scpu, server_cpu_util: ($scpu / $wall),
     cpu_s_per_gb: (if $body > 0 then $scpu / ($body / 1e9) else null end),
     client_cpu_s: $ccpu, client_cpu_util: ($ccpu / $wall), origin_cpu_s: $ocpu,
     server_core_irq_s: $s_irq, client_core_irq_s: $c_irq,
     # No IRQ time accounting in this kernel: softirq work a process runs in
     # its own syscalls (the loopback delivery to the receiver) is in its
     # user+system time but ticks as softirq in /proc/stat, so what other
     # processes used is task + irq ticks minus our processes.
     others_server_core_s: ([$s_task + $s_irq - $scpu, 0] | max), others_client_core_s: ([$c_task + $c_irq - $ccpu - $ocpu, 0] | max),
     steal_s: $st}' | tee -a "$runs_file" >"$tmp/last"
  jq -r '"  round \(.round) \(.server) \(.size): \(.req_s|floor) req/s, \(.gbit_s*100|round/100) Gbit/s, p99 \(.p99_ms) ms, server cpu \(.server_cpu_util*100|round)%, wrk cpu \(.client_cpu_util*100|round)%, others on server core \(.others_server_core_s)s, errors \(.errors)"' "$tmp/last" >&2
}

log "priming each server and size for ${prime}s (not kept)"
for z in "${size_list[@]}"; do
  for s in "${server_list[@]}"; do measure 0 "$s" "$z" "$prime"; done
done

log "measuring: $runs round(s) x ${#server_list[@]} servers x ${#size_list[@]} sizes x ${duration}s, server order rotated per round"
for r in $(seq 1 "$runs"); do
  for z in "${size_list[@]}"; do
    n=${#server_list[@]}
    for i in $(seq 0 $((n - 1))); do
      measure "$r" "${server_list[$(((i + r - 1) % n))]}" "$z" "$duration"
    done
  done
done

# ---------------------------------------------------------------- profiles (optional)
profile_keys='^(net/http\.\(\*conn\)\.(serve|readRequest)|net/http\.(ServeContent|\(\*response\)\.finishRequest|\(\*chunkWriter\)\.writeHeader)|'
profile_keys+='.*/internal/edge\.\(\*(Server\)\.(serve|serveEntry|obtain)|cache\)\.open)|io\.copyBuffer|syscall\.(read|write|openat|Close|fstat|Fstat)|'
profile_keys+='os\.\(\*File\)\.(Stat|Close)|runtime\.(mallocgc|gcBgMarkWorker|gcAssistAlloc|findRunnable|netpoll|memmove)|log/slog\.\(\*Logger\)\.[A-Za-z]+|'
profile_keys+='.*prometheus.*WithLabelValues|time\.Now|'
profile_keys+='do_softirq.*|net_rx_action|tcp_sendmsg|tcp_recvmsg|do_sendfile|do_writev|do_iter_readv_writev|ksys_(read|write)|__x64_sys_(writev|sendfile64|openat|close|epoll_wait|recvfrom|sendto)|filemap_read|_copy_(to|from)_iter|copy_page_to_iter|'
profile_keys+='ngx_http_process_request_line|ngx_http_file_cache_open|ngx_open_cached_file|ngx_http_write_filter|ngx_linux_sendfile_chain|ngx_http_cache_send|'
profile_keys+='HTTP1_Session|V1D_Deliver|VDP_DeliverObj|V1L_Write|V1L_Flush|cnt_recv|HSH_Lookup|VSLb.*|Pool_Work_Thread)$'
for s in "${profile_list[@]}"; do
  [ -n "${pid[$s]:-}" ] || die "--profile $s: that server is not running"
  IFS=, read -r -a psizes <<<"$profile_sizes"
  for z in "${psizes[@]}"; do
    [ -f "$tmp/www/obj-$z.bin" ] || die "--profile-sizes $z: not among --sizes"

    pf="$out/profile/$s-$z"
    log "profiling $s during ${duration}s of $z hits (perf record -g; figures of this run are not kept)"
    # The whole server core is recorded (perf's start-up under load takes
    # seconds, so it starts disabled and is switched on through its control
    # fifo right before wrk), and the reports keep the server's processes.
    spids=$(tree_pids "${pid[$s]}" | paste -sd, -)
    rm -f "$tmp/perf.ctl" "$tmp/perf.ack"
    mkfifo "$tmp/perf.ctl" "$tmp/perf.ack"
    perf record -q -F 999 -g -C "$server_cpu" -D -1 --control "fifo:$tmp/perf.ctl,$tmp/perf.ack" \
      -o "$pf.perf.data" >"$pf.perf.log" 2>&1 &
    perf_pid=$!
    started+=("$perf_pid")
    exec 8>"$tmp/perf.ctl" 9<"$tmp/perf.ack"
    echo enable >&8
    read -r -t 60 _ <&9 || die "perf record did not start; see $pf.perf.log"
    pin "$client_cpu"
    "${PIN[@]}" wrk -t1 -c"$(size_conns "$z")" -d"${duration}s" --timeout 30s "http://127.0.0.1:${port[$s]}/obj-$z.bin" >"$pf.wrk.txt" 2>&1 || true
    echo disable >&8
    read -r -t 10 _ <&9 || true
    exec 8>&- 9<&-
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf report -i "$pf.perf.data" --pid "$spids" --percentage relative --stdio --no-children --sort dso -g none >"$pf.dso.txt" 2>/dev/null || true
    perf report -i "$pf.perf.data" --pid "$spids" --percentage relative --stdio --no-children --sort symbol -g none --percent-limit 0.2 >"$pf.flat.txt" 2>/dev/null || true
    perf report -i "$pf.perf.data" --pid "$spids" --percentage relative --stdio --children --sort symbol -g none --percent-limit 0.1 >"$pf.children.txt" 2>/dev/null || true
    perf report -i "$pf.perf.data" --stdio --no-children --sort comm -g none >"$pf.comm.txt" 2>/dev/null || true
    # Inclusive share of the calls that decide a cache hit's cost (Go and
    # kernel names; those a server does not have are simply absent).
    awk -v re="$profile_keys" '$1 ~ /%$/ && $4 ~ re { printf "%8s  %s\n", $1, $4 }' "$pf.children.txt" >"$pf.summary.txt"
    perf script -i "$pf.perf.data" --pid "$spids" -F ip,sym 2>/dev/null | awk -f bench/edgecache/perf-categories.awk >"$pf.categories.txt" || true
    log "$s $z profile ($pf.categories.txt):"
    sed 's/^/    /' "$pf.categories.txt" >&2
    # Syscalls per response: strace -c over exactly one 3 s wrk run (strace
    # slows the server a lot; only the counts are meant).
    strace -c -f -p "$spids" -o "$pf.strace.txt" 2>/dev/null &
    strace_pid=$!
    started+=("$strace_pid")
    sleep 1
    "${PIN[@]}" wrk -t1 -c"$(size_conns "$z")" -d3s --timeout 30s "http://127.0.0.1:${port[$s]}/obj-$z.bin" >"$pf.strace-wrk.txt" 2>&1 || true
    kill -INT "$strace_pid" 2>/dev/null || true
    wait "$strace_pid" 2>/dev/null || true
    nreq=$(awk '/requests in/ { print $1 }' "$pf.strace-wrk.txt")
    awk -v n="${nreq:-0}" '$4 ~ /^[0-9]+$/ && $NF != "total" && n > 0 { printf "%8.2f  %s\n", $4 / n, $NF }' "$pf.strace.txt" |
      sort -rn >"$pf.syscalls-per-response.txt"
    log "$s $z syscalls per response ($nreq responses under strace): $(awk '{ t += $1; printf "%s %s, ", $2, $1 } END { printf "total %.1f", t }' "$pf.syscalls-per-response.txt")"
  done
done

# ---------------------------------------------------------------- results
{
  printf '{"type":"meta","date":"%s","host_nproc":%s,"kernel":"%s","runs":%s,"duration_s":%s,"server_cpu":%s,"client_cpu":%s,"sched":"%s",' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$(uname -r)" "$runs" "$duration" "$server_cpu" "$client_cpu" "$(sched_desc)"
  printf '"loadavg_end":"%s","source_sha256_16":"%s","binary_sha256_16":"%s","go":"%s","nginx":"%s","varnish":"%s","wrk":"%s"}\n' \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$src_sha" "$bin_sha" "$(go env GOVERSION)" "$(nginx -v 2>&1 | sed 's/.*nginx\///')" \
    "$(varnishd -V 2>&1 | sed -n 's/.*(varnish-\([^ ]*\).*/\1/p')" "$(wrk -v 2>&1 | sed -n 's/^wrk \([^ ]*\).*/\1/p')"
} >"$out/meta.json"

jq -sc '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r3: if . == null then null elif . == 0 then 0 else . as $x | ($x | fabs | log10 | floor) as $e | (if $e >= 2 then 1 else pow(10; 2 - $e) end) as $m | ($x * $m | round) / $m end;
  [.[] | select(.type == "run")] | group_by(.size_bytes)[] | group_by(.server)[] |
  {type: "result", server: .[0].server, size: .[0].size, size_bytes: .[0].size_bytes, conns: .[0].conns,
   duration_s: .[0].duration_s, runs: length,
   req_s: (map(.req_s) | median | r3), gbit_s: (map(.gbit_s) | median | r3), p99_ms: (map(.p99_ms) | median | r3),
   cpu_s_per_gb: (map(.cpu_s_per_gb) | median | r3),
   server_cpu_util: (map(.server_cpu_util) | median | r3), client_cpu_util: (map(.client_cpu_util) | median | r3),
   origin_cpu_s: (map(.origin_cpu_s) | add | r3), errors: (map(.errors) | add),
   server_core_irq_s: (map(.server_core_irq_s) | median | r3), others_server_core_s: (map(.others_server_core_s) | median | r3),
   others_client_core_s: (map(.others_client_core_s) | median | r3), steal_s: (map(.steal_s) | add | r3),
   req_s_runs: map(.req_s | r3), gbit_s_runs: map(.gbit_s | r3), cpu_s_per_gb_runs: map(.cpu_s_per_gb | r3)}
' "$runs_file" >"$out/results.jsonl"

jq -sc --slurpfile meta "$out/meta.json" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r3: if . == null then null else (. * 1000 | round) / 1000 end;
  def ratio($a; $b): if $a == null or $b == null or $b == 0 then null else ($a / $b | r3) end;
  (map(select(.type == "result"))) as $res |
  (map(select(.type == "run"))) as $runs |
  ($res | map(.size) | unique_by(.) ) as $_ |
  ([$res[] | {size, size_bytes}] | unique | sort_by(.size_bytes)) as $sizes |
  def get($srv; $z): first($res[] | select(.server == $srv and .size == $z)) // null;
  def paired($other; $z; $m): [ $runs[] | select(.server == "edge" and .size == $z) | .round as $r | .[$m] as $e |
      ($runs[] | select(.server == $other and .size == $z and .round == $r) | .[$m]) as $o | if $o > 0 then $e / $o else empty end ] | median | r3;
  def ratios($other): reduce $sizes[] as $s ({}; . + { ($s.size): (
      get("edge"; $s.size) as $e | get($other; $s.size) as $o |
      if $e == null or $o == null then null else
      {req_s: ratio($e.req_s; $o.req_s), gbit_s: ratio($e.gbit_s; $o.gbit_s), cpu_s_per_gb: ratio($e.cpu_s_per_gb; $o.cpu_s_per_gb),
       paired_median: {req_s: paired($other; $s.size; "req_s"), cpu_s_per_gb: paired($other; $s.size; "cpu_s_per_gb")}} end) });
  ratios("nginx") as $n |
  {type: "summary", date: $meta[0].date, runs: $meta[0].runs, duration_s: $meta[0].duration_s,
   ratios: {"edge/nginx": $n, "edge/varnish": ratios("varnish")},
   targets: {
     "gbit_s_edge/nginx>=1.0_for>=1MiB": ([$sizes[] | select(.size_bytes >= 1048576) | $n[.size].gbit_s // null] | if length == 0 or any(. == null) then null else all(. >= 1.0) end),
     "req_s_edge/nginx>=0.9_for_1KiB": (if $n["1KiB"] == null then null else $n["1KiB"].req_s >= 0.9 end),
     "cpu_s_per_gb_edge<=1.1xnginx": ([$sizes[] | $n[.size].cpu_s_per_gb // null] | if length == 0 or any(. == null) then null else all(. <= 1.1) end)},
   errors: ([$runs[].errors] | add), source_sha256_16: $meta[0].source_sha256_16, binary_sha256_16: $meta[0].binary_sha256_16}
' "$out/results.jsonl" "$runs_file" >"$out/summary.json"

cat "$out/results.jsonl" "$out/summary.json"

# ---------------------------------------------------------------- human summary
{
  echo
  echo "edge cache hits, medians of $runs run(s) x ${duration}s; server on cpu $server_cpu, wrk on cpu $client_cpu"
  jq -r '"\(.server)\t\(.size)\t\(.req_s)\t\(.gbit_s)\t\(.p99_ms)\t\(.cpu_s_per_gb)\t\(.server_cpu_util)\t\(.client_cpu_util)\t\(.errors)"' "$out/results.jsonl" |
    awk -F'\t' 'BEGIN { printf "%-8s %-7s %10s %8s %9s %9s %6s %6s %5s\n", "server", "size", "req/s", "Gbit/s", "p99 ms", "cpu s/GB", "srvCPU", "wrkCPU", "errs" }
                { printf "%-8s %-7s %10s %8s %9s %9s %6s %6s %5s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
  echo
  jq -r '.ratios | to_entries[] | .key as $k | .value | to_entries[] | select(.value != null) |
    "\($k) \(.key): req/s \(.value.req_s), Gbit/s \(.value.gbit_s), cpu s/GB \(.value.cpu_s_per_gb)"' "$out/summary.json"
  jq -r '"targets: " + (.targets | to_entries | map("\(.key)=\(.value)") | join("  "))' "$out/summary.json"
  echo "all files in $out"
} >&2
exit 0
}
