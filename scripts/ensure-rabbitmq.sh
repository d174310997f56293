#!/usr/bin/env bash
# Makes sure the local RabbitMQ answers on 127.0.0.1:5672, starting it when it is down.
set -euo pipefail
up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
up && exit 0
command -v rabbitmq-server >/dev/null || { echo "rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2; exit 1; }
echo "starting rabbitmq-server" >&2
rabbitmq-server -detached
for _ in $(seq 1 120); do
	if up && rabbitmqctl -q await_startup >/dev/null 2>&1; then exit 0; fi
	sleep 0.5
done
echo "RabbitMQ did not come up on 127.0.0.1:5672" >&2
exit 1
