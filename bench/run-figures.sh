#!/usr/bin/env bash
# Reproduces the figures of bench/README.md on one machine: a redis-server of
# its own, the rtm server built from this checkout, and the load generator,
# all on loopback.
#
#   bench/run-figures.sh [figure...]     figures: smoke 1 2 3 4 5 6 7 (default: all)
#
# Every figure runs once per protocol version in EIOS (Engine.IO 3, then 4);
# each result file name ends in -eio3 or -eio4.
#
# Environment: REDIS_PORT (6390), PORT (3400), OUT (/tmp/rtm-bench-results),
# EIOS ("3 4"), SERVER_BIN (a server binary to measure instead of building this
# checkout's, e.g. another branch's, for figures side by side).
# Every run is bounded in time; the script stops what it started on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
REDIS_PORT=${REDIS_PORT:-6390}
PORT=${PORT:-3400}
OUT=${OUT:-/tmp/rtm-bench-results}
EIOS=${EIOS:-3 4}
EIO=${EIOS%% *}
TARGET=http://127.0.0.1:$PORT
REDIS=127.0.0.1:$REDIS_PORT
mkdir -p "$OUT"

if [[ -n ${SERVER_BIN:-} ]]; then
	cp "$SERVER_BIN" "$OUT/rtm-server"
else
	go build -o "$OUT/rtm-server" .
fi
go build -o "$OUT/bench" ./bench
BENCH="$OUT/bench"

REDIS_PID=""
SERVER_PID=""
cleanup() {
	stop_server
	if [[ -n $REDIS_PID ]]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

start_redis() {
	if [[ -z $REDIS_PID ]]; then
		if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
			echo "a Redis already listens on $REDIS_PORT: stop it or set REDIS_PORT" >&2
			exit 1
		fi
		redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning \
			>"$OUT/redis.log" 2>&1 &
		REDIS_PID=$!
		for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
	fi
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
}

# start_server [VAR=value...]: a node with rate limits off, on the real Redis.
start_server() {
	stop_server
	if curl -fs "$TARGET/healthz" >/dev/null 2>&1; then
		echo "something already serves $TARGET: stop it or set PORT" >&2
		exit 1
	fi
	env PORT="$PORT" REDIS_URL="redis://$REDIS" LOG_LEVEL=warn PPROF=true \
		RATE_HEARTBEAT=0 RATE_PATCH=0 RATE_CHAT=0 RATE_OTHER=0 "$@" \
		"$OUT/rtm-server" >>"$OUT/server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 100); do curl -fs "$TARGET/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
	echo "server did not start" >&2
	exit 1
}

stop_server() {
	if [[ -n $SERVER_PID ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}

# first_eio reports whether this pass is the first protocol version (runs that
# open no socket are done once).
first_eio() { [[ $EIO == "${EIOS%% *}" ]]; }

# start_server_defaults: a node with default settings (rate limits on).
start_server_defaults() {
	stop_server
	env PORT="$PORT" REDIS_URL="redis://$REDIS" LOG_LEVEL=warn "$OUT/rtm-server" >>"$OUT/server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 100); do curl -fs "$TARGET/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
	echo "server did not start" >&2
	exit 1
}

# once NAME ARGS...: like bench but a single run, table and JSON from the same
# run, at protocol version $EIO.
once() {
	local name=$1-eio$EIO
	shift
	echo "== $name: bench -eio $EIO -target $TARGET -redis $REDIS $*"
	"$BENCH" -eio "$EIO" -target "$TARGET" -redis "$REDIS" -quiet -json "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" || true
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({k:r[k] for k in ("phases","latency","steady_rates_per_second","events","errors","skipped","servers","bench_cpu_percent_steady") if k in r}, indent=1))' "$OUT/$name.json" >"$OUT/$name.txt" 2>/dev/null || true
}

fig_smoke() {
	# As `make test` runs it: a node with default settings (rate limits on).
	start_redis
	start_server_defaults
	"$BENCH" -smoke -eio "$EIO" -target "$TARGET"
}

# Figure 1: Redis round trips per presence operation (INFO commandstats deltas).
fig_1() {
	start_redis
	start_server
	# joins (ramp), patches (steady), leaves (leave phase): 1,000 connections.
	once f1-join-patch-leave -rooms 10 -users 100 -ramp 5s -duration 10s -hb-rate 500 -patch-share 1
	# plain heartbeats at several rates.
	for spec in "1000 100" "10000 1000" "2000 5000" "2000 10000" "2000 20000"; do
		set -- $spec
		start_redis
		start_server
		once "f1-beats-$2" -rooms $(($1 / 100)) -users 100 -ramp 5s -duration 20s -hb-rate "$2" -patch-share 0
	done
}

# Figure 2: Redis ceiling for the heartbeat script (redis-benchmark) against
# the server's end-to-end heartbeat throughput.
fig_2() {
	first_eio && fig_2_redis
	for rate in 2000 5000 9000 12000 20000 30000 40000; do
		start_redis
		start_server
		once "f2-server-$rate" -rooms 20 -users 100 -ramp 5s -duration 20s -hb-rate "$rate" -max-inflight 20000
	done
}

# fig_2_redis: the Redis side of figure 2, no socket (done once).
fig_2_redis() {
	start_redis
	"$BENCH" -redis "$REDIS" -seed 10000 -rooms 1
	for k in 1 16 64 256; do
		mapfile -t ARGS < <("$BENCH" -redis "$REDIS" -beat-cmd "$k" -lua presence_lua.go)
		echo "== redis-benchmark EVALSHA heartbeatScript, $k heartbeats per call"
		redis-benchmark -p "$REDIS_PORT" -c 50 -n $((400000 / k + 2000)) -r 10000 -q "${ARGS[@]}" |
			tr '\r' '\n' | grep 'requests per second' | sed 's/.*-1: //' | tee "$OUT/f2-redis-benchmark-$k.txt"
	done
}

# Figure 3: memory per idle connection on one node.
fig_3() {
	# RSS is read from the server's /metrics at the end of the steady phase.
	for n in 1000 5000 10000 19000; do
		start_redis
		start_server
		once "f3-idle-$n" -rooms $((n / 100)) -users 100 -ramp $((n / 1000 + 5))s -duration 15s -hb-interval 10s
	done
}

# Figure 4: reaper cost per tick with 100k live connections (seeded straight
# into Redis), then 10k sockets going silent at once.
fig_4() {
	first_eio && fig_4_idle
	start_redis
	start_server
	# default TTL 30 s, lookback 60 s, interval 3 s: bound = 60 + 2 x 3 = 66 s.
	once f4-silence -rooms 100 -users 100 -ramp 15s -hb-interval 10s -duration 90s -silence-at 5s -expire-within 66s -leave=false
}

# fig_4_idle: reaper cost per tick, no socket (done once).
fig_4_idle() {
	for n in 1000 100000; do
		start_redis
		"$BENCH" -redis "$REDIS" -seed "$n" -rooms $((n / 100))
		start_server
		sleep 1
		echo "== reaper with $n live connections"
		"$BENCH" -target "$TARGET" -redis "$REDIS" -observe 30s | tee "$OUT/f4-reaper-idle-$n.txt"
	done
}

# Figure 5: fan-out, one room of 1,000 members each patching once a second.
fig_5() {
	start_redis
	start_server
	once f5-fanout -rooms 1 -users 1000 -ramp 10s -duration 20s -hb-rate 1000 -patch-share 1 -leave=false
}

# Figure 6: cost growth, connections x (CPU, RSS, p99), heartbeats every 10 s
# plus one patch in ten.
fig_6() {
	for n in 1000 5000 10000 19000; do
		start_redis
		start_server
		once "f6-growth-$n" -rooms $((n / 100)) -users 100 -ramp $((n / 1000 + 5))s -duration 30s -hb-interval 10s -patch-share 0.1 -chat-rate $((n / 100))
	done
}

# overload NAME ARGS...: one -scenario overload run against a fresh node with
# default settings (rate limits on), at protocol version $EIO; JSON in NAME.json.
overload() {
	local name=$1-eio$EIO
	shift
	start_redis
	start_server_defaults
	echo "== $name: bench -scenario overload -eio $EIO -target $TARGET $*"
	"$BENCH" -scenario overload -eio "$EIO" -target "$TARGET" -quiet -json "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" || true
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({k:r[k] for k in ("offered_deliveries_per_second","joins_ok","joins_failed_by_code","acks_by_code","acks_lost","disconnected_by_server","latency","deliveries_per_second_load","recovered","recovery_ms","server","failed_checks") if k in r}, indent=1))' "$OUT/$name.json" | tee "$OUT/$name.txt" || true
}

# Figure 7: overload, one room of 1,000 members on one node (issue 9 item 4).
# The first run offers far more than the node delivers (a patch per member
# every 500 ms: 2M deliveries/s) and gives its saturation S (deliveries/s
# received); then 1x and 2x S, and the 500k deliveries/s of issue 8.
fig_7() {
	overload f7-overload-500ms -members 1000 -ramp 10s -duration 20s -patch-every 500ms
	local sat
	sat=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["deliveries_per_second_load"]))' "$OUT/f7-overload-500ms-eio$EIO.json" 2>/dev/null || echo 0)
	if [[ $sat -gt 0 ]]; then
		overload f7-overload-1x -members 1000 -ramp 10s -duration 20s -offered "$sat"
		overload f7-overload-2x -members 1000 -ramp 10s -duration 20s -offered $((2 * sat))
	fi
	overload f7-overload-500k -members 1000 -ramp 10s -duration 20s -offered 500000
}

figs=("$@")
[[ ${#figs[@]} -eq 0 ]] && figs=(smoke 1 3 2 6 5 4 7)
for f in "${figs[@]}"; do
	for EIO in $EIOS; do
		"fig_$f"
	done
done
echo "results in $OUT"
