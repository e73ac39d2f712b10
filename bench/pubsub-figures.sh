#!/usr/bin/env bash
# Reproduces the pub/sub and Redis Cluster figures of bench/README.md: three
# app nodes on one Redis, then on a 3-master, 3-replica Redis Cluster, all on
# loopback, with the load generator spreading connections over the nodes.
#
#   bench/pubsub-figures.sh [single|cluster|cost]...   (default: all three)
#
#   single   3 nodes on one Redis: pub/sub messages per node against the
#            deployment's events, rooms kept on one node each (30 rooms) and
#            spread over the three (31 rooms)
#   cluster  the same on the cluster
#   cost     one node, single Redis against the cluster: Redis calls per
#            heartbeat and patch, ack latencies
#
# Environment: OUT (/tmp/rtm-pubsub-results), REDIS_PORT (6395), CLUSTER_PORT
# (7300: six ports from there), PORT (3500: three ports from there).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rtm-pubsub-results}
REDIS_PORT=${REDIS_PORT:-6395}
CLUSTER_PORT=${CLUSTER_PORT:-7300}
PORT=${PORT:-3500}
mkdir -p "$OUT"
go build -o "$OUT/rtm-server" .
go build -o "$OUT/bench" ./bench

PIDS=()
SERVERS=()
cleanup() {
	stop_servers
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

redis() { # redis PORT [ARGS...]: a redis-server of the run's own
	local port=$1
	shift
	mkdir -p "$OUT/redis-$port"
	(cd "$OUT/redis-$port" && rm -f nodes.conf dump.rdb && exec redis-server --port "$port" --bind 127.0.0.1 --save "" \
		--appendonly no --loglevel warning "$@") >"$OUT/redis-$port.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
	echo "redis on $port did not start" >&2
	exit 1
}

SINGLE_UP=""
single() {
	if [[ -z $SINGLE_UP ]]; then
		redis "$REDIS_PORT"
		SINGLE_UP=1
	fi
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	URL=redis://127.0.0.1:$REDIS_PORT
}

CLUSTER_UP=""
cluster() {
	if [[ -z $CLUSTER_UP ]]; then
		local addrs=()
		for i in 0 1 2 3 4 5; do
			redis $((CLUSTER_PORT + i)) --cluster-enabled yes --cluster-node-timeout 2000
			addrs+=("127.0.0.1:$((CLUSTER_PORT + i))")
		done
		redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$OUT/cluster-create.log"
		for _ in $(seq 100); do
			redis-cli -p "$CLUSTER_PORT" cluster info | grep -q cluster_state:ok && break
			sleep 0.1
		done
		CLUSTER_UP=1
	fi
	for i in 0 1 2 3 4 5; do redis-cli -p $((CLUSTER_PORT + i)) flushall >/dev/null 2>&1 || true; done
	URL=redis://127.0.0.1:$CLUSTER_PORT
}

# start_servers N: N nodes on $URL, rate limits off; TARGETS lists them.
start_servers() {
	stop_servers
	TARGETS=""
	for i in $(seq 0 $(($1 - 1))); do
		env PORT=$((PORT + i)) REDIS_URL="$URL" LOG_LEVEL=warn \
			RATE_HEARTBEAT=0 RATE_PATCH=0 RATE_CHAT=0 RATE_OTHER=0 \
			"$OUT/rtm-server" >>"$OUT/server-$i.log" 2>&1 &
		SERVERS+=($!)
		TARGETS+="${TARGETS:+,}http://127.0.0.1:$((PORT + i))"
	done
	for i in $(seq 0 $(($1 - 1))); do
		for _ in $(seq 100); do curl -fs "http://127.0.0.1:$((PORT + i))/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
	done
}

stop_servers() {
	for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	SERVERS=()
}

# run NAME ARGS...: one bench run against TARGETS; prints the figures.
run() {
	local name=$1
	shift
	echo "== $name: bench -target $TARGETS $*"
	"$OUT/bench" -target "$TARGETS" -quiet -json "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" || true
	python3 - "$OUT/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rates = r["steady_rates_per_second"]
events = rates.get("patches", 0) + rates.get("chats", 0)
print(f"  deployment: {events:.0f} events/s published (patches + chat), errors {r['errors']}, seq gaps {r['events'].get('seq_gaps', 0)}, missing {r['events'].get('presence_missing', 0)}")
for s in r["servers"]:
    share = s["pubsub_messages_per_second_steady"] / events if events else 0
    print(f"  {s['target']}: {s['sockets']:.0f} sockets, pub/sub {s['pubsub_messages_per_second_steady']:.0f} msg/s ({share:.2f} of the deployment's), {s['pubsub_buckets']:.0f} buckets, CPU {s['cpu_percent_steady']:.0f}%")
lat = r["latency"]
for k in ("join", "heartbeat", "patch"):
    if k in lat:
        print(f"  {k} ack p50 {lat[k]['p50_ms']:.2f} ms p99 {lat[k]['p99_ms']:.2f} ms")
ops = rates.get("heartbeats", 0) + rates.get("patches", 0)
calls = sum(s.get("redis_calls_steady", 0) for s in r["servers"])
secs = next((p["seconds"] for p in r["phases"] if p["name"].startswith("steady")), 0)
if ops and secs:
    print(f"  Redis calls per heartbeat or patch: {calls / (ops * secs):.3f}")
PY
}

spread() { # the two room layouts, 1,800 connections, 600 patches/s
	run "$1-affinity" -rooms 30 -users 60 -ramp 5s -duration 20s -hb-rate 600 -patch-share 1
	run "$1-spread" -rooms 31 -users 58 -ramp 5s -duration 20s -hb-rate 600 -patch-share 1
}

fig_single() {
	single
	start_servers 3
	spread single
}

fig_cluster() {
	cluster
	start_servers 3
	spread cluster
}

fig_cost() {
	for backend in ${COST_BACKENDS:-single cluster}; do
		$backend
		start_servers 1
		run "cost-$backend-beats" -rooms 20 -users 100 -ramp 5s -duration 20s -hb-rate 4000 -patch-share 0
		run "cost-$backend-patches" -rooms 20 -users 100 -ramp 5s -duration 20s -hb-rate 400 -patch-share 1
	done
}

for f in "${@:-single cluster cost}"; do
	for g in $f; do "fig_$g"; done
done
