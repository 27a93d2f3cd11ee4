#!/bin/sh
# Serves GET / and GET /health/ with "<color> <version>"; with "web-unhealthy" in /app/mode,
# /health/ answers 404 (never 2xx/3xx). GET /cgi-bin/stream?seconds=N holds its response open for
# N seconds, a line a second (app/stream.sh): a long-lived connection for the tests.
# /health/ answers 404 (never 2xx/3xx). With "web-logs-env" it logs its environment as it starts
# (secrets included: the tests check that fab masks them wherever it shows these logs).
. /app/lib.sh
if mode_has web-logs-env; then
  env | sort
fi
mkdir -p /www
echo "$COLOR $VERSION" > /www/index.html
if ! mode_has web-unhealthy; then
  mkdir -p /www/health
  echo "$COLOR $VERSION" > /www/health/index.html
fi
mkdir -p /www/cgi-bin
cp /app/stream.sh /www/cgi-bin/stream
event "web start"
httpd -f -p 8000 -h /www &
pid=$!
trap 'kill $pid 2>/dev/null; event "web stop"; exit 0' TERM INT
wait $pid
