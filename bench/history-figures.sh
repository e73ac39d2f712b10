#!/usr/bin/env bash
# Reproduces "Figures: room history (issue 21)" of bench/README.md, on a
# redis-server of its own and one node built from this checkout, rate limits
# off, all on loopback:
#
# 1. Memory: ROOMS rooms of USERS members, each room sending EVENTS_PER_ROOM
#    presence updates and CHATS_PER_ROOM chat messages per second for longer
#    than HISTORY_TTL_MS; then the history streams' MEMORY USAGE and XLEN,
#    per room and per entry.
# 2. CPU: the presence fan-out (one room of FANOUT_MEMBERS, each patching once
#    a second), history off (HISTORY_MAX=0) and on (the defaults), alternated
#    RUNS times on a fresh Redis and node each; server CPU per delivered event.
#
#   bench/history-figures.sh [memory] [cpu]     (default: both)
#
# Environment: REDIS_PORT (6393), PORT (3601), OUT (/tmp/rtm-history-results),
# EIO (4), ROOMS (100), USERS (10), EVENTS_PER_ROOM (5), CHATS_PER_ROOM (2),
# HISTORY_TTL_MS (30000 for the memory run), FANOUT_MEMBERS (300), RUNS (2),
# DURATION (20s). Every run is bounded in time; the script stops what it
# started on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
REDIS_PORT=${REDIS_PORT:-6393}
PORT=${PORT:-3601}
OUT=${OUT:-/tmp/rtm-history-results}
EIO=${EIO:-4}
ROOMS=${ROOMS:-100}
USERS=${USERS:-10}
EVENTS_PER_ROOM=${EVENTS_PER_ROOM:-5}
CHATS_PER_ROOM=${CHATS_PER_ROOM:-2}
HISTORY_TTL_MS=${HISTORY_TTL_MS:-30000}
FANOUT_MEMBERS=${FANOUT_MEMBERS:-300}
RUNS=${RUNS:-2}
DURATION=${DURATION:-20s}
TARGET=http://127.0.0.1:$PORT
REDIS=127.0.0.1:$REDIS_PORT
mkdir -p "$OUT"

go build -o "$OUT/rtm-server" .
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

# start_server [VAR=value...]: a node with rate limits off, on the Redis above.
start_server() {
	stop_server
	if curl -fs "$TARGET/healthz" >/dev/null 2>&1; then
		echo "something already serves $TARGET: stop it or set PORT" >&2
		exit 1
	fi
	env PORT="$PORT" REDIS_URL="redis://$REDIS" LOG_LEVEL=warn \
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

run() {
	local name=$1
	shift
	echo "== $name: bench -eio $EIO -target $TARGET -redis $REDIS $*"
	"$BENCH" -eio "$EIO" -target "$TARGET" -redis "$REDIS" -quiet -json "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" || true
}

fig_memory() {
	start_redis
	start_server HISTORY_TTL_MS="$HISTORY_TTL_MS" PRESENCE_DISCONNECT_GRACE_MS=120000
	local secs=$((HISTORY_TTL_MS / 1000 + 10))
	run memory -rooms "$ROOMS" -users "$USERS" -ramp 5s -duration "${secs}s" \
		-hb-rate $((ROOMS * EVENTS_PER_ROOM)) -patch-share 1 -chat-rate $((ROOMS * CHATS_PER_ROOM)) -leave=false
	# The histories as the flow left them (the generator's sockets are closed,
	# the connections wait for their grace: the rooms still exist).
	local keys=0 bytes=0 entries=0
	while read -r key; do
		[[ -n $key ]] || continue
		keys=$((keys + 1))
		bytes=$((bytes + $(redis-cli -p "$REDIS_PORT" memory usage "$key" samples 0)))
		entries=$((entries + $(redis-cli -p "$REDIS_PORT" xlen "$key")))
	done < <(redis-cli -p "$REDIS_PORT" --scan --pattern '*}:h')
	local rate
	rate=$(jq -r '.steady_rates_per_second | "\(.patches) patches/s, \(.chats) chats/s"' "$OUT/memory.json")
	{
		echo "history memory: $keys rooms, $rate offered, HISTORY_TTL_MS=$HISTORY_TTL_MS"
		if ((keys > 0 && entries > 0)); then
			echo "  streams: $bytes bytes, $entries entries: $((bytes / keys)) bytes and $((entries / keys)) entries per room, $((bytes / entries)) bytes per entry"
		fi
		redis-cli -p "$REDIS_PORT" info memory | grep -E '^used_memory:|^used_memory_human:'
	} | tee "$OUT/memory.txt"
}

fig_cpu() {
	: >"$OUT/cpu.txt"
	for i in $(seq "$RUNS"); do
		for mode in off on; do
			start_redis
			if [[ $mode == off ]]; then start_server HISTORY_MAX=0; else start_server; fi
			run "cpu-$mode-$i" -rooms 1 -users "$FANOUT_MEMBERS" -ramp 5s -duration "$DURATION" \
				-hb-rate "$FANOUT_MEMBERS" -patch-share 1 -leave=false
			jq -r --arg m "$mode" '
				(.servers[0].cpu_percent_steady) as $cpu |
				(.steady_rates_per_second.presence_events_received) as $ev |
				"history \($m): server CPU \($cpu | floor) %, \($ev | floor) events delivered/s, " +
				"\(if $ev > 0 then ($cpu * 10000 / $ev * 100 | floor) / 100 else "-" end) us CPU per delivered event, " +
				"missing \(.events.presence_missing // 0), seq gaps \(.events.seq_gaps // 0); " +
				(.phases[] | select(.name == "steady") | .redis |
					"Redis CPU \(.cpu_percent | floor) %, \(.calls.evalsha // 0) scripts at " +
					"\(if (.calls.evalsha // 0) > 0 then (.usec.evalsha / .calls.evalsha | floor) else "-" end) us each")' \
				"$OUT/cpu-$mode-$i.json" | tee -a "$OUT/cpu.txt"
		done
	done
}

FIGS=("$@")
[[ ${#FIGS[@]} -gt 0 ]] || FIGS=(memory cpu)
for f in "${FIGS[@]}"; do "fig_$f"; done
