#!/bin/sh
# GET /cgi-bin/stream?seconds=N (run by busybox httpd as a CGI script): a response that stays open
# N seconds (1 to 9999, default 10), one line "<color> <version> <i>" a second, then
# "<color> <version> end". It stands for a long-lived connection (a websocket, server-sent
# events): see the README, "Open connections across the switch and the cleanup".
# X-Accel-Buffering: no makes nginx pass each line on at once instead of buffering the response.
. /app/lib.sh
case "$QUERY_STRING" in seconds=*) n=${QUERY_STRING#seconds=}; n=${n%%&*};; *) n=;; esac
case "$n" in [1-9] | [1-9][0-9] | [1-9][0-9][0-9] | [1-9][0-9][0-9][0-9]) ;; *) n=10;; esac
printf 'Content-Type: text/plain\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n'
i=1
while [ "$i" -le "$n" ]; do
  echo "$COLOR $VERSION $i"
  i=$((i + 1))
  sleep 1
done
echo "$COLOR $VERSION end"
