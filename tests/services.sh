#!/bin/sh
# Make sure the servers the tests talk to run on 127.0.0.1.
# moto is started by the tests themselves (tests/conftest.py); Chroma's server
# by the tests that need it. Only redis-server is started here.
set -eu
if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "redis-server answers on 127.0.0.1:6379"
    exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is not installed: run 'apt-get install -y redis-server' (or set" >&2
    echo "CHROMASYNC_TEST_REDIS_URL to a Redis the tests may flush, db 15)" >&2
    exit 1
fi
mkdir -p .chromasync
redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$(pwd)/.chromasync" --logfile "$(pwd)/.chromasync/redis.log" \
    --pidfile "$(pwd)/.chromasync/redis.pid"
i=0
until redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then echo "redis-server did not start; see .chromasync/redis.log" >&2; exit 1; fi
    sleep 0.1
done
echo "started redis-server on 127.0.0.1:6379 (pid file .chromasync/redis.pid)"
