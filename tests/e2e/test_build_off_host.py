"""build.where = "local" on real engines: h3 is the builder (reached as DOCKER_HOST=ssh://h3 with
the bed's ssh_config), h1 and h2 receive. The source folder is a git repository on this machine;
the hosts keep the example app as the fixture copied it (version 1), so a host that serves another
version got it from the builder, not from a build of its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import EXAMPLE, fab, hosts_file, rows, serves, states

TARGETS = '[hosts.h1]\nssh = "h1"\n[hosts.h2]\nssh = "h2"\n'


def git(src: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(src), "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source(tmp_path) -> Path:
    """The example app as a git repository on this machine, tagged v1; a file of its own makes its
    image one that no host has from an earlier run."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    (src / "app" / "run-id").write_text(f"{uuid.uuid4()}\n")
    git(src, "init", "-q")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "v1")
    git(src, "tag", "v1")
    return src


def change(src: Path, version: str) -> str:
    """A one-line change of the app, committed: returns what git describe then says."""
    (src / "app" / "VERSION").write_text(version + "\n")
    git(src, "commit", "-qam", f"version {version}")
    return git(src, "describe", "--always", "--dirty", "--tags")


def local_hosts(tmp_path, bed, src: Path, builder: str = "ssh://h3", hosts: str = TARGETS) -> str:
    return str(hosts_file(tmp_path, bed, hosts=hosts, prepare="[]",
                          build=f'{{ where = "local", builder = "{builder}", source = "{src}" }}'))


def image_id(h, name: str) -> str:
    return h.run(f"docker image inspect -f '{{{{.Id}}}}' {name}").stdout.strip()


def last_history(h) -> dict:
    return json.loads((h.home / "app" / ".fab-bluegreen" / "app.history.jsonl").read_text().splitlines()[-1])


def test_built_once_off_the_hosts_then_only_the_change_is_shipped_then_nothing(bed, hosts, tmp_path, source):
    h1, h2, h3 = hosts
    path = local_hosts(tmp_path, bed, source)

    res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("build: done in") == 1  # one build for both hosts (one platform)
    built = image_id(h3, "simple-app:build")
    for h in (h1, h2):
        assert serves(h) == "blue 1"
        assert image_id(h, "simple-app:blue") == built  # the builder's exact image, not one built on the host
        assert "simple-app:build" not in h.run("docker image ls --format '{{.Repository}}:{{.Tag}}'").stdout
        assert "v1" in rows(res.stdout)[h.name] and last_history(h)["versions"]["blue"] == "v1"
        first = last_history(h)["shipped"]["simple-app:blue"]
        assert 0 < first < 20_000  # fbg/busybox:1 is there already: only the app's layer went

    describe = change(source, "2")  # a one-line change, on this machine only
    res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
    assert res.returncode == 0, res.stderr
    changed = h3.saved_layer_sizes("simple-app:build")[-1]  # the app's layer, which the change changed
    built2 = image_id(h3, "simple-app:build")
    assert built2 != built
    for h in (h1, h2):
        assert serves(h) == "green 2"  # though the host's own copy of the app still says 1
        assert (h.home / "app" / "app" / "VERSION").read_text().strip() == "1"
        assert image_id(h, "simple-app:green") == built2
        sent = last_history(h)["shipped"]["simple-app:green"]
        assert 0 < sent <= 2 * changed, (sent, changed)
        assert describe in rows(res.stdout)[h.name] and last_history(h)["versions"]["green"] == describe
    assert res.stderr.count("simple-app:green: sending 1 of 2 layers") == 2

    res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)  # nothing changed
    assert res.returncode == 0, res.stderr
    for h in (h1, h2):
        assert serves(h) == "blue 2" and image_id(h, "simple-app:blue") == built2
        assert last_history(h)["shipped"] == {"simple-app:blue": 0}
        assert "0 B (had it)" in rows(res.stdout)[h.name]

    status = fab("status", "--host", "h1", "--hosts-file", path)
    assert status.returncode == 0 and f"{describe}: beat redis web worker running" in rows(status.stdout)["h1"]
    history = fab("history", "--host", "h1", "--lines", "1", "--hosts-file", path)
    assert history.returncode == 0
    assert f"blue {describe}, green {describe}; shipped 0 B (had it)" in rows(history.stdout)["h1"]


def test_a_host_that_cannot_load_is_rolled_back_and_the_other_carries_on(bed, hosts, tmp_path, source):
    h1, h2, _ = hosts
    path = local_hosts(tmp_path, bed, source)
    assert fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path).returncode == 0
    blue = states(h2, "blue")
    change(source, "2")
    wrapper = h2.path("/tmp/fbg-docker-no-load")  # h2's Docker refuses `docker load`, as a full disk would
    wrapper.write_text('#!/bin/sh\nif [ "$1" = load ]; then cat >/dev/null; echo "Error processing tar file'
                       '(exit status 1): write /layer.tar: no space left on device" >&2; exit 1; fi\n'
                       'exec /usr/bin/docker "$@"\n')
    wrapper.chmod(0o755)
    h2.run("mount --bind /tmp/fbg-docker-no-load /usr/local/bin/docker")  # h2's own mount namespace only
    try:
        res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
    finally:
        h2.run("umount /usr/local/bin/docker")
    assert res.returncode == 1
    table = rows(res.stdout)
    assert "deployed" in table["h1"] and serves(h1) == "green 2"
    assert "rolled back" in table["h2"] and "ship" in table["h2"] and "no space left on device" in table["h2"]
    assert "(nothing was changed)" in table["h2"]
    assert serves(h2) == "blue 1" and states(h2, "blue") == blue and states(h2, "green") == {}


def test_a_build_that_fails_changes_nothing_on_any_host(bed, hosts, tmp_path, source):
    h1, h2, _ = hosts
    path = local_hosts(tmp_path, bed, source)
    assert fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path).returncode == 0
    before = {h.name: states(h, "blue") for h in (h1, h2)}
    (source / "Dockerfile").write_text("FROM fbg/busybox:1\nCOPY no-such-folder/ /app/\n")
    res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
    assert res.returncode == 1 and "build failed; its last lines" in res.stderr
    for h in (h1, h2):
        assert "rolled back" in rows(res.stdout)[h.name] and "the build on ssh://h3 failed" in rows(res.stdout)[h.name]
        assert serves(h) == "blue 1" and states(h, "blue") == before[h.name] and states(h, "green") == {}


def test_a_dry_run_builds_nothing_and_says_what_each_host_would_receive(bed, hosts, tmp_path, source):
    h1, h2, h3 = hosts
    path = local_hosts(tmp_path, bed, source)
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    built = image_id(h3, "simple-app:build")
    h2_images = h2.run("docker image ls -q --no-trunc | sort").stdout
    change(source, "2")
    res = fab("deploy", "--dry-run", "--host", "h1", "--host", "h2", "--hosts-file", path)
    assert res.returncode == 0, res.stderr
    assert "build (dry run, nothing built): web for linux/amd64 on ssh://h3" in res.stderr
    assert image_id(h3, "simple-app:build") == built  # no build ran
    assert "h1   simple-app:green: the host has" in res.stderr  # the last build: h1 has it
    assert "h2   simple-app:blue: sending 1 of 2 layers" in res.stderr  # h2 lacks its app layer
    assert "docker load && docker tag" in res.stdout and "# stdin: 1 of 2 layers" in res.stdout
    assert h2.run("docker image ls -q --no-trunc | sort").stdout == h2_images and states(h2, "blue") == {}


def test_fab_check_says_whether_the_builder_answers(bed, hosts, tmp_path, source):
    res = fab("check", "--host", "h1", "--hosts-file", local_hosts(tmp_path, bed, source, hosts='[hosts.h1]\nssh = "h1"\n'))
    assert res.returncode == 0, res.stdout
    assert any("builder" in line and "ssh://h3 answers" in line for line in res.stdout.splitlines())
    assert any("image_space" in line and "free in /var/lib/docker" in line for line in res.stdout.splitlines())
    res = fab("check", "--host", "h1", "--hosts-file",
              local_hosts(tmp_path, bed, source, builder="ssh://h9", hosts='[hosts.h1]\nssh = "h1"\n'))
    assert res.returncode == 1
    line = next(line for line in res.stdout.splitlines() if "builder" in line)
    assert "fail" in line and "the builder ssh://h9 cannot be reached" in line
