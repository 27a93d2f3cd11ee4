"""Self-check of the test bed: ssh, sudo, docker, compose, nginx and redis work on every host.

python -m tests.testbed.selfcheck [--hosts N]   (as root; brings the bed up if it is not)
Exit 0 when every check passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.error
import urllib.request

from .bed import Bed, Host, ensure_up

REMOTE_CHECK = r"""
set -e
test "$(id -un)" = deploy
id -nG | grep -qw docker
docker compose version >/dev/null
sudo -n nginx -t 2>/dev/null
sudo -n nginx -s reload 2>/dev/null
test "$(stat -c '%U:%G %a' /etc/nginx/conf.d/app_upstream.conf)" = "root:root 644"
docker image inspect fbg/busybox:1 fbg/redis:7 >/dev/null
docker rm -f fbg-selfcheck >/dev/null 2>&1 || true
docker run -d --init --name fbg-selfcheck fbg/redis:7 >/dev/null
for i in 1 2 3 4 5 6 7 8 9 10; do
  out=$(docker exec fbg-selfcheck redis-cli ping 2>/dev/null) && [ "$out" = PONG ] && break
  sleep 0.1
done
docker rm -f fbg-selfcheck >/dev/null
test "$out" = PONG
docker run --rm fbg/busybox:1 sh -c 'test -k /tmp && echo busybox-ok' | grep -q busybox-ok
echo ok
"""


def ssh(bed: Bed, host: Host, cmd: str, user: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(bed.ssh_argv(host.name, user) + [cmd], capture_output=True, text=True,
                          timeout=60)


def check_host(bed: Bed, h: Host) -> list[str]:
    errors = []
    r = ssh(bed, h, REMOTE_CHECK)
    if r.returncode != 0 or r.stdout.strip() != "ok":
        errors.append(f"deploy checks failed (rc={r.returncode}): {r.stdout}{r.stderr}")
    r = ssh(bed, h, "sudo -n true", user="nosudo")
    if r.returncode == 0 or "password is required" not in r.stderr:
        errors.append(f"nosudo should be refused by sudo: rc={r.returncode} {r.stderr.strip()}")
    if h.run("hostname").stdout.strip() != h.name:
        errors.append("hostname is not the host's name")
    # nginx answers from the root namespace; nothing listens on the upstream yet -> 502
    try:
        urllib.request.urlopen(f"http://{h.ip}/", timeout=3)
        errors.append("nginx answered 2xx with no app behind it")
    except urllib.error.HTTPError as e:
        if e.code != 502:
            errors.append(f"nginx answered {e.code}, expected 502 with no app")
    except OSError as e:
        errors.append(f"nginx unreachable: {e}")
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.testbed.selfcheck")
    ap.add_argument("--hosts", type=int, default=None, help="bring the bed up with N hosts if needed")
    args = ap.parse_args(argv)
    bed = ensure_up(args.hosts) if args.hosts else Bed()
    if not bed.hosts:
        print("selfcheck: the bed is not up (pass --hosts N to bring it up)", file=sys.stderr)
        return 1
    failed = False
    for h in bed.hosts:
        t0 = time.monotonic()
        errors = check_host(bed, h)
        failed |= bool(errors)
        print(f"{h.name}: {'ok' if not errors else 'FAILED'} ({time.monotonic() - t0:.1f}s)")
        for e in errors:
            print(f"  - {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
