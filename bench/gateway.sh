#!/usr/bin/env bash
# bench/gateway.sh: load POST /scrape (the echo script) on the scrapegate
# gateway with wrk at 1, 16, 64 and 256 connections, beside the raw AMQP RPC
# loop in the same reply mode (the limit), in one run of the shared bench
# (../shared/bench/run.sh: it installs wrk, starts its Go echo worker, and
# prints req/s, latency percentiles and the CPU of every process). Then it
# prints the gateway's CPU per call in microseconds.
#
# It starts the gateway itself: bin/scrapegate (make build) with the example
# Caddyfile (JWT auth, rate limits raised out of the way, access log on), on
# its own port and admin port, and stops it at the end.
#
# Environment (defaults):
#   TARGET=gateway         gateway: bin/scrapegate as above; floor: bench/floor (plain
#                          net/http + rpc.Client.Call, nothing else) in its place, to
#                          measure what Caddy and the handler chain add
#   REPLY_MODE=queue       the gateway's reply mode: queue (named reply queue) or direct
#   PHASES="raw gateway"   phases of the shared bench ("gateway" alone skips the limit;
#                          add "node1" for the Node peer)
#   DURATION=10 CONCS="1 16 64 256" WARMUP=2   passed to the shared bench
#   ROUNDS=1               runs of the shared bench, one after the other; with more
#                          than one, the summary gives each round's ratios (gateway
#                          against the raw loop and the Node peer of the same round)
#                          and their medians: this machine's speed drifts by ±25%
#                          within minutes, so one round's ratio can mislead
#   GATEWAY_PORT=18080 GATEWAY_ADMIN=127.0.0.1:12019
#   CADDYFILE=Caddyfile    the config the gateway runs
#   ACCESS_LOG=1           0: run with the access log off (a copy of CADDYFILE without `log`)
#   CALL_LOG=1             0: run with the default logger at WARN (no "scrape call" line per call)
#   GATEWAY_ENV=""         extra VAR=value words for the gateway's environment only
#                          (e.g. GATEWAY_ENV=GOMAXPROCS=1; the broker, worker and wrk keep theirs)
#   PPROF=0                1: take a CPU profile of the gateway during the c=64 step
#                          into $OUT/gateway.pprof
#   SHARED_BENCH=<repo>/../shared/bench   where run.sh lives
#   OUT=<dir>              results (default: a new /tmp/scrapegate-bench.XXXXXX)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGET=${TARGET:-gateway}
REPLY_MODE=${REPLY_MODE:-queue}
PHASES=${PHASES:-"raw gateway"}
GATEWAY_PORT=${GATEWAY_PORT:-18080}
GATEWAY_ADMIN=${GATEWAY_ADMIN:-127.0.0.1:12019}
CADDYFILE=${CADDYFILE:-Caddyfile}
ACCESS_LOG=${ACCESS_LOG:-1}
CALL_LOG=${CALL_LOG:-1}
PPROF=${PPROF:-0}
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
OUT=${OUT:-$(mktemp -d /tmp/scrapegate-bench.XXXXXX)}
export OUT DURATION=${DURATION:-10} CONCS=${CONCS:-"1 16 64 256"} WARMUP=${WARMUP:-2}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
mkdir -p "$OUT"

case $REPLY_MODE in
queue) RAW_MODES=queue-confirm ;;
direct) RAW_MODES=confirm ;;
*) echo "REPLY_MODE must be queue or direct" >&2; exit 2 ;;
esac
export RAW_MODES PHASES

[[ -x bin/scrapegate ]] || { echo "bin/scrapegate is missing: run make build" >&2; exit 1; }
[[ -x $SHARED_BENCH/run.sh ]] || { echo "$SHARED_BENCH/run.sh not found (set SHARED_BENCH)" >&2; exit 1; }

config=$CADDYFILE
if [[ $ACCESS_LOG == 0 || $CALL_LOG == 0 ]]; then
	config=$OUT/bench.Caddyfile
	awk -v access="$ACCESS_LOG" -v calls="$CALL_LOG" '
		# drop the log directive of the site (a line, or a block up to its closing brace)
		access == 0 && /^\tlog[[:space:]]*(\{)?[[:space:]]*$/ { if ($0 ~ /\{/) skip = 1; next }
		skip { if ($0 ~ /^\t\}[[:space:]]*$/) skip = 0; next }
		# raise the default logger to warn: no info line per call
		calls == 0 && !done && /^\{[[:space:]]*$/ { print; print "\tlog {\n\t\tlevel WARN\n\t}"; done = 1; next }
		{ print }
	' "$CADDYFILE" >"$config"
fi

export JWT_SECRET_KEY=${JWT_SECRET_KEY:-$(openssl rand -hex 32)}
gw_env=(
	SCRAPEGATE_ADDR=":$GATEWAY_PORT" SCRAPEGATE_ADMIN="$GATEWAY_ADMIN" AMQP_REPLY_MODE="$REPLY_MODE"
	# caddy-ratelimit keeps a ring buffer of `events` timestamps per key: raise the
	# limits past what this machine can do in a 1 s window, not to absurd numbers
	RATE_LIMIT_REQUESTS=100000 RATE_LIMIT_WINDOW=1s SITE_RATE_LIMIT_REQUESTS=100000 SITE_RATE_LIMIT_WINDOW=1s
	MAX_IN_FLIGHT_PER_CLIENT=100000
)
# shellcheck disable=SC2206 # VAR=value words, split on purpose
gw_env+=(${GATEWAY_ENV:-})
case $TARGET in
gateway) env "${gw_env[@]}" bin/scrapegate run --config "$config" --adapter caddyfile >"$OUT/gateway.log" 2>&1 & ;;
floor)
	go build -o "$OUT/floor" ./bench/floor
	env "${gw_env[@]}" "$OUT/floor" -listen "127.0.0.1:$GATEWAY_PORT" -amqp "$AMQP_URL" -reply-mode "$REPLY_MODE" >"$OUT/gateway.log" 2>&1 &
	;;
*) echo "TARGET must be gateway or floor" >&2; exit 2 ;;
esac
GW=$!
stop() {
	kill -TERM "$GW" 2>/dev/null || true
	wait "$GW" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 300); do
	kill -0 "$GW" 2>/dev/null || { echo "the gateway exited:" >&2; tail -20 "$OUT/gateway.log" >&2; exit 1; }
	curl -sf -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/" && break
	sleep 0.2
done

CLIENT_ID=bench
TOKEN=$(bin/scrapegate token --client-id "$CLIENT_ID" 2>/dev/null | tail -1 || true)
if [[ $TOKEN != *.*.* ]]; then
	b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
	now=$(date +%s)
	h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
	p=$(printf '{"sub":"%s","client_id":"%s","type":"access","iat":%d,"exp":%d}' "$CLIENT_ID" "$CLIENT_ID" "$now" $((now + 86400)) | b64url)
	s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$JWT_SECRET_KEY" -binary | b64url)
	TOKEN="$h.$p.$s"
fi

if [[ $PPROF == 1 && $TARGET == gateway ]]; then
	(
		# profile the gateway while wrk runs its c=64 step against it
		for _ in $(seq 1 3600); do
			pgrep -f "wrk -t2 -c64 -d${DURATION}s .*:$GATEWAY_PORT/scrape" >/dev/null && break
			sleep 0.5
		done
		curl -s -o "$OUT/gateway.pprof" "http://$GATEWAY_ADMIN/debug/pprof/profile?seconds=$((DURATION > 2 ? DURATION - 1 : 1))"
		echo "CPU profile of the c=64 step: go tool pprof -top bin/scrapegate $OUT/gateway.pprof" >&2
	) &
fi

ROUNDS=${ROUNDS:-1}
results=()
for round in $(seq 1 "$ROUNDS"); do
	dir=$OUT
	[[ $ROUNDS == 1 ]] || dir=$OUT/round-$round
	mkdir -p "$dir"
	OUT=$dir GATEWAY_PID=$GW "$SHARED_BENCH/run.sh" "http://127.0.0.1:$GATEWAY_PORT/scrape" "$TOKEN"
	results+=("$dir/results.jsonl")
done

# the gateway's CPU per call: its CPU% of one core divided by its calls per second;
# per round, its req/s against the raw loop's and the Node peer's of that round
python3 - "$TARGET" "${results[@]}" <<'EOF'
import json, statistics, sys
target, files = sys.argv[1], sys.argv[2:]
print("\n| round | target | conc | req/s | p50 ms | p99 ms | CPU % | CPU µs/call | of raw | of node1 | p50 - raw p50 |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratios = {}
for i, f in enumerate(files, 1):
    rows = [json.loads(l) for l in open(f) if l.strip()]
    ref = {(d["target"], d["conc"]): d["result"] for d in rows if d["target"] in ("raw", "node1")}
    for d in rows:
        if d["target"] != "gateway":
            continue
        r, c, conc = d["result"], d["cpu"], d["conc"]
        rps = r.get("rps", 0) or 0
        us = (c["gateway"] / 100.0) / rps * 1e6 if rps else float("nan")
        raw, node = ref.get(("raw", conc)), ref.get(("node1", conc))
        of_raw = rps / raw["rps"] if raw and raw.get("rps") else None
        of_node = rps / node["rps"] if node and node.get("rps") else None
        dp50 = r.get("p50_ms", 0) - raw["p50_ms"] if raw else None
        m = ratios.setdefault(conc, {"us": [], "raw": [], "node": [], "dp50": []})
        m["us"].append(us)
        for k, v in (("raw", of_raw), ("node", of_node), ("dp50", dp50)):
            if v is not None:
                m[k].append(v)
        fmt = lambda v, f: f % v if v is not None else "-"
        print("| %d | %s | %d | %.0f | %.2f | %.2f | %.1f | %.1f | %s | %s | %s |" % (
            i, target, conc, rps, r.get("p50_ms", 0), r.get("p99_ms", 0), c["gateway"], us,
            fmt(of_raw and of_raw * 100, "%.0f%%"), fmt(of_node, "%.2fx"), fmt(dp50, "%+.2f ms")))
if len(files) > 1:
    print("\n| medians over %d rounds | conc | CPU µs/call | of raw | of node1 | p50 - raw p50 |" % len(files))
    print("|---|---:|---:|---:|---:|---:|")
    med = lambda xs, f: f % statistics.median(xs) if xs else "-"
    for conc, m in sorted(ratios.items()):
        print("| %s | %d | %s | %s | %s | %s |" % (target, conc, med(m["us"], "%.1f"),
              med([x * 100 for x in m["raw"]], "%.0f%%"), med(m["node"], "%.2fx"), med(m["dp50"], "%+.2f ms")))
EOF
echo "results in $OUT" >&2
