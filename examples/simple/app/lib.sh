# Shared by the app's scripts (busybox sh). Sourced, not run.
COLOR=${DEPLOY_COLOR:-blue}
VERSION=$(cat /app/VERSION 2>/dev/null || echo 0)
EVENTS=/var/app/events.log

# Seconds since the epoch with milliseconds (busybox date has no %N; adjtimex reads the clock).
now() {
  adjtimex | awk '/tv_sec/ {s = $2} /tv_usec/ {u = $2} END {printf "%d.%03d\n", s, u / 1000}'
}
# Milliseconds since the epoch, as an integer.
now_ms() {
  adjtimex | awk '/tv_sec/ {s = $2} /tv_usec/ {u = $2} END {printf "%d%03d\n", s, u / 1000}'
}
# event "worker start" -> "<epoch.ms> <color> <version> worker start" appended to events.log,
# and printed, so that `docker compose logs` shows it too
event() {
  echo "$(now) $COLOR $VERSION $*" | tee -a "$EVENTS"
}
mode_has() {
  grep -qw "$1" /app/mode 2>/dev/null
}
# Sleep that a trapped signal interrupts at once (a foreground sleep would delay the trap).
nap() {
  sleep "$1" &
  wait $!
}
