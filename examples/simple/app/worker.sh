#!/bin/sh
# Logs start, burns one CPU for 3 s (a warm-up), then idles; logs stop on SIGTERM.
# With "worker-crash" in /app/mode it exits 1 after 1 s.
. /app/lib.sh
trap 'event "worker stop"; exit 0' TERM INT
event "worker start"
if mode_has worker-crash; then
  nap 1
  event "worker crash"
  exit 1
fi
end=$(( $(now_ms) + 3000 ))
i=0
while :; do
  i=$((i + 1))
  if [ $((i % 5000)) -eq 0 ] && [ "$(now_ms)" -ge "$end" ]; then
    break
  fi
done
event "worker warm"
while :; do
  nap 1
done
