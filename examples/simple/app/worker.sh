#!/bin/sh
# Logs start, then idles; logs stop on SIGTERM. (No CPU burst of its own: each test's deploys would pay
# for it, and no test looks at it; the benchmark's worker below has one.)
# With "worker-crash" in /app/mode it exits 1 after 1 s.
# With "bench-worker" in /app/mode (the benchmark's worker): burns two cores for its first 4 s
# (a prefork pool importing everything), then is busy half the time (0.5 s on, 0.5 s off).
. /app/lib.sh
trap 'event "worker stop"; kill $burners 2>/dev/null; exit 0' TERM INT
event "worker start"
if mode_has worker-crash; then
  nap 1
  event "worker crash"
  exit 1
fi
# spin until the given epoch milliseconds (checking the clock every 5000 rounds)
spin_until() {
  i=0
  while :; do
    i=$((i + 1))
    if [ $((i % 5000)) -eq 0 ] && [ "$(now_ms)" -ge "$1" ]; then
      return
    fi
  done
}
if mode_has bench-worker; then
  spin_until $(( $(now_ms) + 4000 )) &
  burners=$!
  spin_until $(( $(now_ms) + 4000 ))
  wait $burners 2>/dev/null
  event "worker warm"
  while :; do
    spin_until $(( $(now_ms) + 500 ))
    nap 0.5
  done
fi
while :; do
  nap 1
done
