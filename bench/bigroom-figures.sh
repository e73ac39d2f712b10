#!/usr/bin/env bash
# Large rooms figures (-scenario bigroom): for each protocol version, the
# server of a previous revision (BASE) and of this checkout, each in turn
# as two nodes on one redis-server of its own:
#
#   (a) opted in: MEMBERS members over both nodes at RATE joins/s, with
#       -events batched -snapshot page, then a count-only variant
#       (-events count -snapshot count);
#   (b) old-style: OLD_MEMBERS members on ONE node at OLD_RATE joins/s, no
#       option sent (-events '' -snapshot '');
#   (c) mixed: as (a) batched/page, half of the members old-style
#       (-old-share 0.5).
#
# A server that does not know the large-room options (before PROTOCOL.md
# revision 3) cannot run (a) or (c): the generator's probe join detects it
# and refuses; the run is listed as refused, with the reason. A fresh Redis
# (FLUSHALL) and fresh nodes with rate limits off for every run.
#
#   BASE=<rev> bench/bigroom-figures.sh
#
# Environment: BASE (the previous revision to build; default b748cc9^, the
# parent of the commit that added the large-room options), PREV_BIN or
# NEW_BIN (server binaries to use instead of building BASE or this
# checkout), REDIS_PORT (6393), PORT (3611: the nodes listen on PORT and
# PORT+1), OUT (/tmp/rtm-bigroom-results), EIOS ("4 3"), MEMBERS (10000),
# RATE (500), OLD_MEMBERS (3000), OLD_RATE (300), OTHER_ROOMS (100),
# OTHER_USERS (2), BASELINE (0: as long as the ramp), CONVERGE (10s), SETTLE
# (3s), RUNS ("opted count old mixed": which of the runs to do), SERVER_CPUS
# and BENCH_CPUS (taskset CPU lists for the nodes and for the generator and
# Redis; empty: no pinning). Every run is bounded in time; the script stops
# what it started on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
BASE=${BASE:-b748cc9^}
REDIS_PORT=${REDIS_PORT:-6393}
PORT=${PORT:-3611}
OUT=${OUT:-/tmp/rtm-bigroom-results}
EIOS=${EIOS:-4 3}
MEMBERS=${MEMBERS:-10000}
RATE=${RATE:-500}
OLD_MEMBERS=${OLD_MEMBERS:-3000}
OLD_RATE=${OLD_RATE:-300}
OTHER_ROOMS=${OTHER_ROOMS:-100}
OTHER_USERS=${OTHER_USERS:-2}
BASELINE=${BASELINE:-0}
CONVERGE=${CONVERGE:-10s}
SETTLE=${SETTLE:-3s}
RUNS=${RUNS:-opted count old mixed}
SERVER_CPUS=${SERVER_CPUS:-}
BENCH_CPUS=${BENCH_CPUS:-}
REDIS=127.0.0.1:$REDIS_PORT
NODES=(http://127.0.0.1:$PORT http://127.0.0.1:$((PORT + 1)))
mkdir -p "$OUT"

# The two servers: BASE built from a clean export of that revision (the
# checkout is not touched), and this checkout.
if [[ -n ${PREV_BIN:-} ]]; then
	cp "$PREV_BIN" "$OUT/rtm-base"
	echo "base: $PREV_BIN" >"$OUT/builds.txt"
else
	rev=$(git rev-parse --verify "$BASE^{commit}")
	rm -rf "$OUT/src-base"
	mkdir -p "$OUT/src-base"
	git archive "$rev" | tar -x -C "$OUT/src-base"
	(cd "$OUT/src-base" && go build -o "$OUT/rtm-base" .)
	echo "base: $BASE = $rev" >"$OUT/builds.txt"
fi
if [[ -n ${NEW_BIN:-} ]]; then
	cp "$NEW_BIN" "$OUT/rtm-new"
	echo "new: $NEW_BIN" >>"$OUT/builds.txt"
else
	go build -o "$OUT/rtm-new" .
	echo "new: checkout at $(git rev-parse HEAD)$(git diff --quiet HEAD -- . || echo ' (with local changes)')" >>"$OUT/builds.txt"
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

# start_servers BIN N: N nodes of BIN (rate limits and the per-IP socket cap
# off) on a flushed Redis.
start_servers() {
	local bin=$1 n=$2 i
	stop_servers
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	for ((i = 0; i < n; i++)); do
		if curl -fs "${NODES[i]}/healthz" >/dev/null 2>&1; then
			echo "something already serves ${NODES[i]}: stop it or set PORT" >&2
			exit 1
		fi
		"${PIN_SERVER[@]}" env PORT=$((PORT + i)) REDIS_URL="redis://$REDIS" LOG_LEVEL=warn MAX_SOCKETS_PER_IP=0 \
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

# bigroom NAME BIN EIO NODES MEMBERS RATE [flags...]: one run on the first
# NODES nodes; the report in NAME.json, the progress and any refusal in
# NAME.log.
bigroom() {
	local name=$1 bin=$2 eio=$3 n=$4 members=$5 rate=$6 targets
	shift 6
	targets=${NODES[0]}
	if ((n > 1)); then targets=${NODES[0]},${NODES[1]}; fi
	start_servers "$bin" "$n"
	echo "== $name" >&2
	"${PIN_BENCH[@]}" "$OUT/bench" -scenario bigroom -eio "$eio" -target "$targets" \
		-members "$members" -join-rate "$rate" -other-rooms "$OTHER_ROOMS" -other-users "$OTHER_USERS" \
		-baseline "$BASELINE" -converge-within "$CONVERGE" -settle "$SETTLE" -json "$@" \
		>"$OUT/$name.json" 2>"$OUT/$name.log" || true
	if grep -q "does not know the large-room join options" "$OUT/$name.log"; then
		echo "   refused: $(grep -o 'does not know.*' "$OUT/$name.log" | head -1)" >&2
	fi
	stop_servers
}

want() { [[ " $RUNS " == *" $1 "* ]]; }

start_redis
for eio in $EIOS; do
	for build in base new; do
		bin=$OUT/rtm-$build
		# (a) and (c) on the base build are refused by the probe when it
		# predates the options: they are run all the same, to say so.
		if want opted; then
			bigroom "$build-optin-batched-page-eio$eio" "$bin" "$eio" 2 "$MEMBERS" "$RATE" -events batched -snapshot page
		fi
		if want count; then
			bigroom "$build-optin-count-eio$eio" "$bin" "$eio" 2 "$MEMBERS" "$RATE" -events count -snapshot count
		fi
		if want old; then
			bigroom "$build-oldstyle-1node-eio$eio" "$bin" "$eio" 1 "$OLD_MEMBERS" "$OLD_RATE" -events '' -snapshot ''
		fi
		if want mixed; then
			bigroom "$build-mixed-eio$eio" "$bin" "$eio" 2 "$MEMBERS" "$RATE" -events batched -snapshot page -old-share 0.5
		fi
	done
done

# One line per run: joined of members, join errors, join ack p50/p99/max,
# convergence (p50, max, not converged), the other rooms' heartbeat p99 in
# the baseline and the ramp and their ratio, CPU per join over all nodes
# (and above the baseline), RSS per connection per node, bytes the members
# read per join, failed checks; or why the run was refused.
{
	printf 'run\tjoined\terrors\tjoin p50 ms\tjoin p99 ms\tjoin max ms\tconv p50 ms\tconv max ms\tnot conv\thb p99 base ms\thb p99 ramp ms\tratio\tus CPU/join\tabove base\tRSS KiB/conn per node\tbytes/join\tchecks\n'
	for f in "$OUT"/*-eio*.json; do
		name=$(basename "$f" .json)
		if [[ ! -s $f ]]; then
			reason=$(grep -o 'does not know the large-room join options[^:]*' "$OUT/$name.log" | head -1 || true)
			printf '%s\trefused: %s\n' "$name" "${reason:-no report, see $name.log}"
			continue
		fi
		jq -r --arg n "$name" '[$n, "\(.joined)/\(.members)", ([.join_errors_by_code | to_entries[] | "\(.key)=\(.value)"] | join(",")),
			.join_ack_latency.p50_ms, .join_ack_latency.p99_ms, .join_ack_latency.max_ms,
			(.convergence.p50_ms*10|round/10), (.convergence.max_ms*10|round/10), .convergence.not_converged,
			.other_heartbeat_latency_baseline.p99_ms, .other_heartbeat_latency_ramp.p99_ms,
			(.other_heartbeat_p99_ratio_ramp_to_baseline*100|round/100),
			(.cpu_us_per_join_all_nodes|round), (.cpu_us_per_join_above_baseline_all_nodes|round),
			([.nodes[] | (.rss_bytes_per_connection/1024*10|round/10)] | map(tostring) | join(" ")),
			(.member_bytes_received_per_join_all_nodes|round), (.failed_checks|length)] | @tsv' "$f" || true
	done
} | tee "$OUT/summary.tsv"
