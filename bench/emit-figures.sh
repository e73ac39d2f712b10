#!/usr/bin/env bash
# Reproduces "Figures: routing (emit to a room over two nodes)" of
# bench/README.md: for each protocol version and offered rate, the previous
# main (PREV_BIN, chat fan-out) and this checkout (topics through
# rtm/emitter, and the same chat fan-out) back to back, two nodes on one
# redis-server of its own; then the presence fan-out (-scenario overload, one
# node) of both binaries back to back. A fresh Redis (FLUSHALL) and fresh
# nodes with rate limits off for every run.
#
#   PREV_BIN=/tmp/rtm-prev bench/emit-figures.sh
#
# Environment: PREV_BIN (required: a build of the previous main), NEW_BIN (a
# server binary; default: build this checkout), REDIS_PORT (6392), PORT
# (3501: the nodes listen on PORT and PORT+1), OUT (/tmp/rtm-emit-results),
# EIOS ("4 3"), RATES (messages/s, "200 500"; empty: no emit run), MEMBERS (1000), RAMP (10s),
# DURATION (20s), OVERLOAD (500000 deliveries/s offered; empty: skip),
# SERVER_CPUS and BENCH_CPUS (taskset CPU lists for the nodes and for the
# generator and Redis; empty: no pinning). Every run is bounded in time; the
# script stops what it started on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
: "${PREV_BIN:?set PREV_BIN to a server binary built from the previous main}"
REDIS_PORT=${REDIS_PORT:-6392}
PORT=${PORT:-3501}
OUT=${OUT:-/tmp/rtm-emit-results}
EIOS=${EIOS:-4 3}
RATES=${RATES-200 500}
MEMBERS=${MEMBERS:-1000}
RAMP=${RAMP:-10s}
DURATION=${DURATION:-20s}
OVERLOAD=${OVERLOAD-500000}
SERVER_CPUS=${SERVER_CPUS:-}
BENCH_CPUS=${BENCH_CPUS:-}
REDIS=127.0.0.1:$REDIS_PORT
NODES=(http://127.0.0.1:$PORT http://127.0.0.1:$((PORT + 1)))
mkdir -p "$OUT"

cp "$PREV_BIN" "$OUT/rtm-prev"
if [[ -n ${NEW_BIN:-} ]]; then
	cp "$NEW_BIN" "$OUT/rtm-new"
else
	go build -o "$OUT/rtm-new" .
fi
go build -o "$OUT/bench" ./bench

# Command prefixes that pin to SERVER_CPUS and BENCH_CPUS (each execs what
# follows, so $! is the pinned process itself).
PIN_SERVER=(env)
PIN_BENCH=(env)
if [[ -n $SERVER_CPUS ]]; then PIN_SERVER=(taskset -c "$SERVER_CPUS"); fi
if [[ -n $BENCH_CPUS ]]; then PIN_BENCH=(taskset -c "$BENCH_CPUS"); fi

REDIS_PID=""
SERVER_PIDS=()
cleanup() {
	stop_servers
	if [[ -n $REDIS_PID ]]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

start_redis() {
	if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
		echo "a Redis already listens on $REDIS_PORT: stop it or set REDIS_PORT" >&2
		exit 1
	fi
	"${PIN_BENCH[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--loglevel warning >"$OUT/redis.log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
	echo "redis-server did not start" >&2
	exit 1
}

# start_servers BIN N: N nodes of BIN (rate limits off) on a flushed Redis.
start_servers() {
	local bin=$1 n=$2 i
	stop_servers
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	for ((i = 0; i < n; i++)); do
		if curl -fs "${NODES[i]}/healthz" >/dev/null 2>&1; then
			echo "something already serves ${NODES[i]}: stop it or set PORT" >&2
			exit 1
		fi
		"${PIN_SERVER[@]}" env PORT=$((PORT + i)) REDIS_URL="redis://$REDIS" LOG_LEVEL=warn \
			RATE_HEARTBEAT=0 RATE_PATCH=0 RATE_CHAT=0 RATE_OTHER=0 "$bin" >>"$OUT/server.log" 2>&1 &
		SERVER_PIDS+=($!)
	done
	for ((i = 0; i < n; i++)); do
		for _ in $(seq 100); do curl -fs "${NODES[i]}/healthz" >/dev/null 2>&1 && continue 2; sleep 0.1; done
		echo "node ${NODES[i]} did not start" >&2
		exit 1
	done
	sleep 1 # let the nodes settle before the baseline
}

stop_servers() {
	local p
	for p in "${SERVER_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	SERVER_PIDS=()
}

# emit NAME BIN EIO RATE [flags...]: one emit run over both nodes.
emit() {
	local name=$1 bin=$2 eio=$3 rate=$4
	shift 4
	start_servers "$bin" 2
	echo "== $name" >&2
	"${PIN_BENCH[@]}" "$OUT/bench" -scenario emit -eio "$eio" -target "${NODES[0]},${NODES[1]}" -redis "$REDIS" \
		-members "$MEMBERS" -ramp "$RAMP" -duration "$DURATION" -msg-rate "$rate" -quiet -json "$@" \
		>"$OUT/$name.json" || true
	stop_servers
}

# overload NAME BIN EIO: the presence fan-out on one node.
overload() {
	local name=$1 bin=$2 eio=$3
	start_servers "$bin" 1
	echo "== $name" >&2
	"${PIN_BENCH[@]}" "$OUT/bench" -scenario overload -eio "$eio" -target "${NODES[0]}" \
		-members "$MEMBERS" -ramp "$RAMP" -duration "$DURATION" -offered "$OVERLOAD" -quiet -json \
		>"$OUT/$name.json" || true
	stop_servers
}

start_redis
for eio in $EIOS; do
	for rate in $RATES; do
		emit "emit-prev-chat-$rate-eio$eio" "$OUT/rtm-prev" "$eio" "$rate"
		emit "emit-new-topic-$rate-eio$eio" "$OUT/rtm-new" "$eio" "$rate"
		emit "emit-new-chat-$rate-eio$eio" "$OUT/rtm-new" "$eio" "$rate" -emit-via chat
	done
	if [[ -n $OVERLOAD ]]; then
		overload "overload-prev-eio$eio" "$OUT/rtm-prev" "$eio"
		overload "overload-new-eio$eio" "$OUT/rtm-new" "$eio"
	fi
done

# One line per run: offered and delivered deliveries/s (during the load),
# deliveries after the stop, missing, server CPU per delivery from the load's
# start until drained and during the load only, server RSS, bench CPU.
{
	printf 'run\tvia\tjoined\toffered/s\tdelivered/s\tafter stop\tmissing (overload: seq gaps)\tus/delivery until drained\tus/delivery load\tRSS MiB\tbench CPU %%\tchecks\n'
	for f in "$OUT"/emit-*.json; do
		jq -r --arg n "$(basename "$f" .json)" '[$n, .via, .members_joined, (.offered_deliveries_per_second|round),
			(.deliveries_per_second_load|round), .deliveries_after_stop, .missing_deliveries,
			(.server_cpu_us_per_delivery*100|round/100), (.server_cpu_us_per_delivery_load*100|round/100),
			(.server_rss_bytes/1048576|round), (.bench_cpu_percent_load|round), (.failed_checks|length)] | @tsv' "$f" || true
	done
	for f in "$OUT"/overload-*.json; do
		jq -r --arg n "$(basename "$f" .json)" '[$n, "presence", .joins_ok, (.offered_deliveries_per_second|round),
			(.deliveries_per_second_load|round), .deliveries_after_stop, .seq_gaps,
			(.server_cpu_us_per_delivery_until_drained*100|round/100), (.server_cpu_us_per_delivery*100|round/100),
			((.server.rss_bytes // 0)/1048576|round), (.bench_cpu_percent_load|round), (.failed_checks|length)] | @tsv' "$f" || true
	done
} | tee "$OUT/summary.tsv"
