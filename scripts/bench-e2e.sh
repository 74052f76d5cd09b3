#!/usr/bin/env bash
# End-to-end relay benchmark with Debian's postfix tools: smtp-source is the
# load, smtp-sink the downstream server. It measures messages per second
# from the first connection to the moment the sink has received the last
# message, so acceptance, the durable queue and delivery are all counted.
#
#   scripts/bench-e2e.sh flowgate sqlite|postgres SESSIONS SIZE COUNT
#   scripts/bench-e2e.sh postfix  -               SESSIONS SIZE COUNT
#
# SIZE is the message size in bytes (smtp-source -l); each message uses one
# connection, as smtp-source does by default. "postfix" runs this machine's
# Postfix as the relay under test, with its queue on disk, for comparison
# (needs root; /etc/postfix is restored afterwards).
# Needs: apt-get install postfix (for smtp-source/smtp-sink), Go, and for
# postgres a server at $BENCH_PG (default postgres://postgres@127.0.0.1:5432).
#
# BENCH_OTHER=hung|healthy (flowgate only): a second accepted domain,
# other.test, has a connector of its own — to a next hop that accepts
# connections and never greets (hung), or to a second smtp-sink (healthy) —
# and BENCH_OTHER_COUNT messages (default 2000, 4 sessions) are sent to it
# while the main load runs. Comparing the main load's rate with the two
# shows whether one hung destination slows the others down.
#
# For flowgate it also prints the process's peak resident memory (VmHWM).
#
# BENCH_SAMPLE=1 (flowgate only): print, every second while the run lasts,
# how many messages flowgate has accepted and the sink has received — the
# backlog, which must not keep growing while acceptance is saturated.
#
# BENCH_PROFILE=DIR (flowgate only): serve pprof (FLOWGATE_PPROF_ADDR), take
# a CPU profile of flowgate for BENCH_PROFILE_SECONDS (default 10) starting
# when the load starts, write it to DIR/cpu.prof, and print the CPU seconds
# that flowgate, the PostgreSQL backends of its database, smtp-source and smtp-sink
# used during the run (from /proc), and how many messages were delivered from
# memory and how many claimed from the queue (from /metrics).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?flowgate or postfix}; engine=${2:?sqlite, postgres or -}
sessions=${3:?sessions}; size=${4:?size}; count=${5:?count}
sink_port=${BENCH_SINK_PORT:-2600}; relay_port=${BENCH_RELAY_PORT:-2626}
work=$(mktemp -d); trap 'cleanup' EXIT
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$target" = postfix ] && [ -d "$work/postfix-etc" ]; then
    postfix stop >/dev/null 2>&1 || true
    rm -rf /etc/postfix && cp -a "$work/postfix-etc" /etc/postfix
  fi
  [ -n "${pgdb:-}" ] && psql "${BENCH_PG:-postgres://postgres@127.0.0.1:5432}/postgres" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP:-}" ] && { echo "kept $work"; return; }
  rm -rf "$work"
}

# smtp-sink listens with SO_REUSEPORT: a sink left over from another run on
# the same port would silently take a share of the deliveries.
for port in "$sink_port" "$relay_port"; do
  if ss -Hltn "sport = :$port" | grep -q .; then
    echo "port $port is already in use (a leftover sink or relay?)" >&2; exit 1
  fi
done

smtp-sink -c -u nobody "127.0.0.1:$sink_port" 1024 >"$work/sink.out" 2>&1 &
pids+=($!)

case "$target" in
flowgate)
  go build -o "$work/flowgate" ./cmd/flowgate
  export FLOWGATE_DATA_DIR="$work/data" FLOWGATE_HTTP_ADDR=127.0.0.1:0 FLOWGATE_SMTP_ADDR="127.0.0.1:$relay_port"
  export FLOWGATE_SMTP_MAX_CONNECTIONS_PER_IP=1000 FLOWGATE_HOSTNAME=bench.flowgate.test
  if [ "$engine" = postgres ]; then
    pgdb="flowgate_bench_$$"
    psql "${BENCH_PG:-postgres://postgres@127.0.0.1:5432}/postgres" -qc "CREATE DATABASE $pgdb"
    export DATABASE_URL="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}/$pgdb?sslmode=disable"
  else
    export DATABASE_URL=
  fi
  other=()
  case "${BENCH_OTHER:-}" in
  hung)
    python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096); held = []
while True: held.append(s.accept()[0])' "${BENCH_OTHER_PORT:-2699}" &
    pids+=($!) ;;
  healthy)
    smtp-sink -u nobody "127.0.0.1:${BENCH_OTHER_PORT:-2699}" 1024 >/dev/null 2>&1 &
    pids+=($!) ;;
  esac
  [ -n "${BENCH_OTHER:-}" ] && other=(-other-domain other.test -other-host "127.0.0.1:${BENCH_OTHER_PORT:-2699}")
  go run ./cmd/fgbench-setup -domain bench.test -smart-host "127.0.0.1:$sink_port" "${other[@]}"
  [ -n "${BENCH_PROFILE:-}" ] && export FLOWGATE_PPROF_ADDR=127.0.0.1:${BENCH_PPROF_PORT:-6061}
  "$work/flowgate" serve 2>"$work/flowgate.log" &
  pids+=($!); relay_pid=$!
  ;;
postfix)
  cp -a /etc/postfix "$work/postfix-etc"
  postfix stop >/dev/null 2>&1 || true
  postconf -e "inet_interfaces = 127.0.0.1" "mydestination =" "relay_domains = bench.test" \
    "relayhost = [127.0.0.1]:$sink_port" \
    "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination" \
    "mynetworks = 127.0.0.0/8" "default_process_limit = 200" "smtp_destination_concurrency_limit = 50" \
    "maillog_file = /var/log/flowgate-bench-postfix.log"
  postconf -M "$relay_port/inet=$relay_port inet n - n - - smtpd"
  postfix start >/dev/null
  ;;
*) echo "target must be flowgate or postfix" >&2; exit 2 ;;
esac

for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$relay_port") 2>/dev/null && break; sleep 0.1; done

# cpu_of PID...: user+system CPU seconds of the processes (and their dead waited-for children).
cpu_of() {
  local t=0 p f
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    f=$(sed 's/^.*) //' "/proc/$p/stat")
    t=$((t + $(echo "$f" | awk '{print $12 + $13 + $14 + $15}')))
  done
  echo "scale=2; $t / $(getconf CLK_TCK)" | bc
}
# PostgreSQL backends serving the benchmark's database (not other databases'
# clients, not the server's background processes such as the WAL writer).
pg_pids() { [ -n "${pgdb:-}" ] && pgrep -f "^postgres: .* $pgdb " || true; }
sink_pid=${pids[0]}

delivered() { tr '\r' '\n' <"$work/sink.out" | grep -o 'mesg=[0-9]*' | tail -n1 | cut -d= -f2; }
if [ -n "${BENCH_PROFILE:-}" ]; then
  mkdir -p "$BENCH_PROFILE"
  curl -s -o "$BENCH_PROFILE/cpu.prof" "http://$FLOWGATE_PPROF_ADDR/debug/pprof/profile?seconds=${BENCH_PROFILE_SECONDS:-10}" &
  prof_pid=$!
  cpu0_relay=$(cpu_of "$relay_pid"); cpu0_pg=$(cpu_of $(pg_pids)); cpu0_sink=$(cpu_of "$sink_pid")
fi
if [ -n "${BENCH_SAMPLE:-}" ] && [ "$target" = flowgate ]; then
  (
    http_addr=""
    for i in $(seq 1 600); do
      [ -n "$http_addr" ] || http_addr=$(grep -o 'http_addr=[0-9.:]*' "$work/flowgate.log" | head -n1 | cut -d= -f2)
      sleep 1
      acc=$(curl -s "http://$http_addr/metrics" | awk '/^flowgate_smtp_messages_total\{result="accepted"\}/ {print $2}')
      echo "after ${i}s: accepted ${acc:-?}, delivered $(delivered || echo 0)"
    done
  ) &
  pids+=($!)
fi
if [ -n "${BENCH_OTHER:-}" ] && [ "$target" = flowgate ]; then
  smtp-source -l "$size" -m "${BENCH_OTHER_COUNT:-2000}" -s 4 -f bench@sender.test -t user@other.test "127.0.0.1:$relay_port" &
  pids+=($!)
fi
start=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o "$work/source.time" \
  smtp-source -l "$size" -m "$count" -s "$sessions" -f bench@sender.test -t user@bench.test "127.0.0.1:$relay_port"
accepted_at=$(date +%s.%N)
while [ "$(delivered || echo 0)" -lt "$count" ] 2>/dev/null; do
  sleep 0.05
  if [ "$(echo "$(date +%s.%N) - $accepted_at > 120" | bc)" = 1 ]; then
    echo "only $(delivered) of $count messages reached the sink within 120s" >&2; exit 1
  fi
done
end=$(date +%s.%N)
if [ -n "${BENCH_PROFILE:-}" ]; then
  printf 'CPU seconds during the run: flowgate %s, its postgres backends %s, smtp-sink %s, smtp-source %s (wall %.2f s)\n' \
    "$(echo "$(cpu_of "$relay_pid") - $cpu0_relay" | bc)" "$(echo "$(cpu_of $(pg_pids)) - $cpu0_pg" | bc)" \
    "$(echo "$(cpu_of "$sink_pid") - $cpu0_sink" | bc)" "$(awk '{print $1 + $2}' "$work/source.time")" "$(echo "$end - $start" | bc)"
  wait "$prof_pid" || true
  http_addr=$(grep -o 'http_addr=[0-9.:]*' "$work/flowgate.log" | head -n1 | cut -d= -f2)
  if [ -n "$http_addr" ]; then
    metrics=$(curl -s "http://$http_addr/metrics")
    printf 'delivery passes: %s from memory, %s claimed from the queue\n' \
      "$(echo "$metrics" | awk '/^flowgate_delivery_messages_total\{source="memory"\}/ {print $2}')" \
      "$(echo "$metrics" | awk '/^flowgate_delivery_messages_total\{source="queue"\}/ {print $2}')"
  fi
fi
if [ "$target" = flowgate ]; then
  echo "flowgate peak resident memory (VmHWM): $(awk '/^VmHWM/ {printf "%d MB", $2/1024}' "/proc/$relay_pid/status")"
fi
printf '%s %s sessions=%s size=%s count=%s: accepted in %.2fs (%.0f msg/s), delivered in %.2fs → %.0f msg/s end to end\n' \
  "$target" "$engine" "$sessions" "$size" "$count" \
  "$(echo "$accepted_at - $start" | bc)" "$(echo "$count / ($accepted_at - $start)" | bc -l)" \
  "$(echo "$end - $start" | bc)" "$(echo "$count / ($end - $start)" | bc -l)"
