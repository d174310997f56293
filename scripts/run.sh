#!/usr/bin/env bash
# `make run`: one worker and the gateway (the example Caddyfile) on the local
# RabbitMQ, in the foreground. Prints a ready-to-paste curl once the gateway
# answers; Ctrl-C or SIGTERM stops both.
#
# Environment (see README.md, "Configuration"): every variable the Caddyfile
# reads passes through. JWT_SECRET_KEY is taken from the environment or, when
# unset, generated for this run; CLIENT_ID names the client of the printed
# token (default "demo"). BIN is where `make build` put the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
export SCRAPEGATE_ADDR=${SCRAPEGATE_ADDR:-:8080}
export SCRAPEGATE_ADMIN=${SCRAPEGATE_ADMIN:-localhost:2019}
CLIENT_ID=${CLIENT_ID:-demo}
if [[ -z ${JWT_SECRET_KEY:-} ]]; then
	JWT_SECRET_KEY=$(openssl rand -hex 32)
	echo "run: JWT_SECRET_KEY is not set; using a random one for this run" >&2
fi
export JWT_SECRET_KEY

for b in "$BIN/scrapegate" "$BIN/scrapegate-worker"; do
	[[ -x $b ]] || { echo "run: $b is missing: run 'make build' (or 'make run')" >&2; exit 1; }
done

# b64url encodes stdin as unpadded base64url.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# mint_token prints an HS256 access token for CLIENT_ID: with the gateway's
# own `scrapegate token` command when the build has it, else by hand.
mint_token() {
	local tok
	if tok=$("$BIN/scrapegate" token --client-id "$CLIENT_ID" 2>/dev/null) && [[ $tok == *.*.* ]]; then
		printf '%s\n' "${tok##*$'\n'}"
		return
	fi
	local now exp header payload sig
	now=$(date +%s)
	exp=$((now + ${JWT_EXPIRES_HOURS:-24} * 3600))
	header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
	payload=$(printf '{"sub":"%s","client_id":"%s","type":"access","iat":%d,"exp":%d}' "$CLIENT_ID" "$CLIENT_ID" "$now" "$exp" | b64url)
	sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$JWT_SECRET_KEY" -binary | b64url)
	printf '%s.%s.%s\n' "$header" "$payload" "$sig"
}

PIDS=()
stop_all() {
	trap - INT TERM EXIT
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	echo "run: stopped" >&2
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

WORKER_LOG_FORMAT=${WORKER_LOG_FORMAT:-console} "$BIN/scrapegate-worker" -amqp-url "$AMQP_URL" &
PIDS+=($!)
"$BIN/scrapegate" run --config Caddyfile --adapter caddyfile &
PIDS+=($!)

# the URL clients use: SCRAPEGATE_ADDR may be ":8080", "host:port" or a domain
case $SCRAPEGATE_ADDR in
:*) BASE="http://localhost$SCRAPEGATE_ADDR" ;;
http://* | https://*) BASE=$SCRAPEGATE_ADDR ;;
*:*) BASE="http://$SCRAPEGATE_ADDR" ;;
*) BASE="https://$SCRAPEGATE_ADDR" ;;
esac

TOKEN=$(mint_token)
BODY='{"script_name": "echo", "parameters": {"hello": "world"}, "timeout": 30}'

# wait until an echo call goes through: gateway up, broker linked, worker live
ready=""
for _ in $(seq 1 300); do
	for p in "${PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || { echo "run: a process exited at start (see its log above)" >&2; exit 1; }
	done
	if out=$(curl -sS -m 5 -X POST "$BASE/scrape" -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' -d "$BODY" 2>/dev/null) && [[ $out == *'"status":"completed"'* ]]; then
		ready=1
		break
	fi
	sleep 0.2
done
if [[ -z $ready ]]; then
	echo "run: the gateway did not answer an echo call within 60 s; last answer: ${out:-none}" >&2
	exit 1
fi

cat >&2 <<EOF

============================================================================
scrapegate is up: gateway $BASE, admin API http://$SCRAPEGATE_ADMIN, one worker.
Token for client "$CLIENT_ID" (JWT_SECRET_KEY=$JWT_SECRET_KEY):

curl -sS -X POST '$BASE/scrape' \\
  -H 'Authorization: Bearer $TOKEN' \\
  -H 'Content-Type: application/json' \\
  -d '$BODY'

API docs: $BASE/docs   status: $BASE/health   Ctrl-C stops everything.
============================================================================

EOF

# run until a process exits or we are told to stop
wait -n "${PIDS[@]}" || true
echo "run: a process exited; stopping the rest" >&2
exit 1
