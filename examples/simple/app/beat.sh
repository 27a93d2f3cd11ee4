#!/bin/sh
# Logs start, then a tick every 0.2 s to ticks.log; logs stop on SIGTERM.
. /app/lib.sh
TICKS=/var/app/ticks.log
trap 'event "beat stop"; exit 0' TERM INT
event "beat start"
while :; do
  echo "$(now) $COLOR $VERSION beat tick" >> "$TICKS"
  nap 0.2
done
