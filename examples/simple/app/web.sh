#!/bin/sh
# Serves GET / and GET /health/ with "<color> <version>"; with "web-unhealthy" in /app/mode,
# /health/ answers 404 (never 2xx/3xx).
. /app/lib.sh
mkdir -p /www
echo "$COLOR $VERSION" > /www/index.html
if ! mode_has web-unhealthy; then
  mkdir -p /www/health
  echo "$COLOR $VERSION" > /www/health/index.html
fi
event "web start"
httpd -f -p 8000 -h /www &
pid=$!
trap 'kill $pid 2>/dev/null; event "web stop"; exit 0' TERM INT
wait $pid
