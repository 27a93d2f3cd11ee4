"""build.where = "local" without Docker or SSH: the saved archive and the part a host lacks, what a
host reports, the build once per platform (a fake docker CLI), shipping against a recording remote,
the sequence on the fake host, the settings, the version people read and the tables.
The same behaviours are shown with real engines in tests/e2e/test_build_off_host.py."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from tasks import archive, build, report
from tasks.config import loader
from tasks.config.schema import Build, Color, HostSettings
from tasks.errors import ConfigError, StepFailed
from tasks.host import check, facts, ship
from tasks.host.check import CheckResult
from tasks.host.deploy import Deploy
from tasks.host.remote import DryRunRemote, RecordingRemote
from tasks.result import DEPLOYED, ROLLED_BACK, DeployResult
from tasks.shell import compose, cpu, images, record
from tasks.shell.record import Record

from .fakehost import FakeHost

BASE = {"bin/sh": b"#!busybox\n" * 500}
APP_V1, APP_V2 = {"app/VERSION": b"1\n"}, {"app/VERSION": b"2\n"}


def tar_of(files: dict[str, bytes | None]) -> bytes:
    """A tar of these files (None: a folder)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def save(path: Path, layers: list[dict[str, bytes]], created: str = "2026-01-01") -> str:
    """An archive as Docker 20.10's `docker save IMAGE_ID` writes it; returns the image ID."""
    tars = [tar_of(files) for files in layers]
    diff_ids = [sha(t) for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created,
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    image = sha(config)
    dirs = [hashlib.sha256(f"{image}{i}".encode()).hexdigest() for i in range(len(tars))]
    manifest = [{"Config": f"{image[7:]}.json", "RepoTags": None, "Layers": [f"{d}/layer.tar" for d in dirs]}]
    files = {**{f"{d}/": None for d in dirs}, **{f"{d}/layer.tar": t for d, t in zip(dirs, tars)},
             **{f"{d}/VERSION": b"1.0" for d in dirs},
             f"{image[7:]}.json": config, "manifest.json": json.dumps(manifest).encode()}
    path.write_bytes(tar_of(files))
    return image


def unpack(data: bytes, compress: str) -> dict[str, bytes]:
    raw = subprocess.run([compress, "-dc"], input=data, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else b"" for m in tar}


# --- the archive, and the part of it a host lacks -------------------------------------------------

def test_chain_ids_are_the_layer_and_everything_below_it():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert archive.chain_ids([a, b]) == [a, sha(f"{a} {b}".encode())]
    # the same layer on another base is another chain: the host must not be thought to have it
    assert archive.chain_ids([b, b])[1] != archive.chain_ids([a, b])[1]


def test_the_archive_is_read_and_a_host_is_sent_only_the_layers_it_lacks(tmp_path):
    image = save(tmp_path / "v1.tar", [BASE, APP_V1])
    saved = archive.Archive(tmp_path / "v1.tar")
    assert saved.id == image and len(saved.layers) == 2
    base_only = archive.host_chains({"sha256:other": (saved.layers[0].diff_id,)})
    part = saved.part(base_only, partial=True, compress="gzip")
    assert part.layers == saved.layers[1:] and part.size == saved.layers[1].size
    got = unpack(b"".join(part), "gzip")
    assert set(got) == {"manifest.json", saved.config, saved.layers[1].member, saved.layers[1].member.split("/")[0]}
    assert got[saved.layers[1].member] == tar_of(APP_V1)
    assert json.loads(got["manifest.json"])[0]["Layers"] == [layer.member for layer in saved.layers]  # as saved
    assert part.fed >= part.size and "1 of 2 layers" in str(part) and "1 the host has left out" in str(part)


def test_a_layer_on_another_base_is_sent_and_the_containerd_store_gets_the_whole_image(tmp_path):
    save(tmp_path / "v1.tar", [BASE, APP_V1])
    saved = archive.Archive(tmp_path / "v1.tar")
    other_base = archive.host_chains({"x": ("sha256:" + "c" * 64, saved.layers[1].diff_id)})
    assert saved.part(other_base, True, "gzip").layers == saved.layers  # same diff ID, other chain: not there
    whole = saved.part(archive.host_chains({"x": (saved.layers[0].diff_id,)}), partial=False, compress="gzip")
    assert whole.whole and whole.layers == saved.layers and "the whole image" in str(whole)
    got = unpack(b"".join(whole), "gzip")
    assert {layer.member for layer in saved.layers} <= set(got)


def test_zstd_only_where_both_ends_have_it():
    assert archive.compressor(host_has_zstd=False) == "gzip"
    assert archive.compressor(host_has_zstd=True) == ("zstd" if archive.shutil.which("zstd") else "gzip")


def test_a_file_that_is_not_a_saved_image_is_one_line(tmp_path):
    (tmp_path / "x.tar").write_bytes(tar_of({"hello": b"x"}))
    with pytest.raises(archive.ArchiveError, match="not an image saved by docker save"):
        archive.Archive(tmp_path / "x.tar")


# --- what a host says ---------------------------------------------------------------------------

@pytest.mark.parametrize("line, platform", [
    ("x86_64 amd64", "linux/amd64"), ("aarch64 arm64", "linux/arm64"), ("aarch64 ", "linux/arm64"),
    ("aarch64 arm", "linux/arm/v7"),  # a 64-bit kernel, a 32-bit Docker: Docker's is what runs the images
    ("armv6l arm", "linux/arm/v6"), ("mips ", None), ("", None)])
def test_the_platform_of_a_host(line, platform):
    assert images.parse_platform(line) == platform


def test_the_inventory_of_a_host():
    out = ("@@fbg:images\nzstd\nstore [[\"Backing Filesystem\",\"extfs\"]]\nfree 1048576 /var/lib/docker\n"
           'image sha256:1 ["sha256:a","sha256:b"]\nimage sha256:2 null\n')
    have = images.parse_inventory(out)
    assert (have.zstd, have.partial, have.free_kb, have.root) == (True, True, 1048576, "/var/lib/docker")
    assert have.images == {"sha256:1": ("sha256:a", "sha256:b"), "sha256:2": ()}
    assert images.parse_inventory('@@fbg:images\nstore [["driver-type","io.containerd.snapshotter.v1"]]\n').partial is False
    assert images.parse_inventory("Cannot connect to the Docker daemon") is None


def test_load_and_tag_lines_are_quoted(tmp_path):
    from .sandbox import Sandbox
    from .test_hostile_values import H

    assert images.load(True) == "zstd -dcq | docker load" and images.load(False) == "gzip -dc | docker load"
    box = Sandbox(tmp_path)
    for line in (images.inventory(), images.platform(), images.load(False)):  # a real sh runs them
        assert box.sh(line).returncode == 0, line
    res = box.sh(images.tag([("sha256:1", H), ("sha256:1", "app:green")]))  # a name the compose file gave
    assert res.returncode == 0 and box.calls("docker")[-2:] == [
        (str(box.home), ["docker", "tag", "sha256:1", H]), (str(box.home), ["docker", "tag", "sha256:1", "app:green"])]
    assert box.pwned() == []


# --- the build, with a fake docker CLI ------------------------------------------------------------

class FakeDocker:
    """Answers the docker and git commands tasks/build.py runs; saves synthetic archives."""

    def __init__(self, tmp: Path, app: dict[str, bytes] = APP_V1, builder: str = "linux/amd64"):
        self.tmp, self.app, self.builder = tmp, app, builder
        self.calls: list[tuple[list[str], dict]] = []
        self.fail = ""  # a word of a command that fails
        self.no_compose = False  # this machine's docker has no compose plugin
        self.built: dict[str, str] = {}  # name -> image ID of the last build
        self.platform = builder  # of the last build

    def __call__(self, argv, cwd=None, env=None, **kw):
        env = env or {}
        self.calls.append((argv, env))
        if argv[:3] == ["docker", "compose", "version"]:
            ok = not self.no_compose
            return subprocess.CompletedProcess(argv, 0 if ok else 1, "Docker Compose version v2.40.3\n" if ok else "",
                                               "" if ok else "docker: 'compose' is not a docker command.\n")
        if self.fail and self.fail in argv:
            return subprocess.CompletedProcess(argv, 1, "", f"{self.fail} failed: no such thing\n")
        out = ""
        if argv[:2] == ["docker", "version"]:
            out = self.builder
        elif argv[:2] == ["git", "-C"]:
            out = "v1-2-gabc1234-dirty\n"
        elif "config" in argv:
            color = env["DEPLOY_COLOR"]
            out = json.dumps({"name": f"app-{color}", "services": {
                "web": {"build": {"context": "."}, "image": f"myapp:{color}"}, "worker": {"image": f"myapp:{color}"},
                "api": {"build": {"context": "api"}}, "redis": {"image": "redis:7"}}})
        elif "build" in argv:
            self.platform = env.get("DOCKER_DEFAULT_PLATFORM", self.builder)
            image = save(self.tmp / "built.tar", [BASE, self.app], created=self.platform)
            self.built = {"myapp:build": image, "app-build-api": image}
        elif argv[:3] == ["docker", "image", "inspect"]:
            what = "2000000" if argv[4] == "{{.Id}} {{.Size}}" else f"{self.platform} 2000000"
            out = "".join(f"{self.built[name]} {what}\n" for name in argv[5:] if name in self.built)
            if len(out.splitlines()) < len(argv[5:]):
                return subprocess.CompletedProcess(argv, 1, out, "Error: No such image\n")
        elif argv[:2] == ["docker", "save"]:
            Path(argv[3]).write_bytes((self.tmp / "built.tar").read_bytes())
        return subprocess.CompletedProcess(argv, 0, out, "")

    def argv(self, word: str) -> list[list[str]]:
        return [argv for argv, _ in self.calls if word in argv]


def settings(tmp_path: Path, name: str = "pi5", **build) -> HostSettings:
    return HostSettings(name=name, ssh=name, settle=0, build=Build(**{"where": "local", "source": str(tmp_path),
                                                                      "builder": "ssh://buildbox", **build}))


def make(tmp_path: Path, hosts: list[HostSettings], platforms: list[str | None], dry_run: bool = False,
         docker: FakeDocker | None = None) -> tuple[build.Builds, FakeDocker]:
    docker = docker or FakeDocker(tmp_path)
    notes: list[str] = []
    builds = build.Builds(notes.append, dry_run=dry_run, run=docker)
    builds.notes = notes
    builds.read_recipes(hosts, "hosts.toml")
    builds.make(hosts, platforms)
    return builds, docker


def test_one_build_per_platform_for_every_host_that_shares_it(tmp_path):
    hosts = [settings(tmp_path, "pi5"), settings(tmp_path, "vm1"), settings(tmp_path, "vm2")]
    builds, docker = make(tmp_path, hosts, ["linux/arm64", "linux/amd64", "linux/amd64"])
    built = [argv_env for argv_env in docker.calls if "build" in argv_env[0]]
    assert len(built) == 2  # amd64 once for vm1 and vm2, arm64 once
    assert [env.get("DOCKER_DEFAULT_PLATFORM") for _, env in built] == ["linux/arm64", None]
    assert all(env["DOCKER_HOST"] == "ssh://buildbox" and env["DEPLOY_COLOR"] == "build" for _, env in built)
    assert built[0][0][:6] == ["docker", "compose", "-p", "app-build", "-f", "compose.yml"]
    assert built[0][0][-2:] == ["web", "api"]  # every service with build:
    vm1 = builds.for_host(hosts[1])
    assert vm1 is builds.for_host(hosts[2]) and not vm1.error and vm1.version == "v1-2-gabc1234-dirty"
    assert set(vm1.images) == {"web", "api"} and vm1.archives == {} and docker.argv("save") == []
    web = vm1.images["web"]
    assert builds.archive(vm1, web).id == web and builds.archive(vm1, vm1.images["api"]).id == web
    assert len(docker.argv("save")) == 1  # saved when a first host lacks it, once for all
    assert builds.names(hosts[1], Color.GREEN) == {"web": "myapp:green", "api": "app-green-api"}


def test_a_failed_build_is_every_hosts_reason_and_nothing_else_runs(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.fail = "build"
    hosts = [settings(tmp_path, "pi5"), settings(tmp_path, "vm1")]
    builds, _ = make(tmp_path, hosts, ["linux/amd64", "linux/amd64"], docker=docker)
    for s in hosts:
        assert builds.for_host(s).error == ("the build on ssh://buildbox failed: build failed: no such thing "
                                           "(nothing was changed on any host)")
    assert docker.argv("save") == [] and any("build failed; its last lines" in n for n in builds.notes)


def test_an_unreachable_builder_and_an_unknown_platform_are_reasons(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.fail = "version"
    hosts = [settings(tmp_path, "pi5"), settings(tmp_path, "vm1")]
    builds, _ = make(tmp_path, hosts, ["linux/amd64", None], docker=docker)
    assert builds.for_host(hosts[0]).error.startswith("the builder ssh://buildbox cannot be reached: version failed")
    assert builds.for_host(hosts[1]).error == "its platform could not be read before the build"
    docker = FakeDocker(tmp_path)
    docker.no_compose = True
    builds, _ = make(tmp_path, hosts[:1], ["linux/amd64"], docker=docker)
    assert builds.for_host(hosts[0]).error == ("docker compose does not run on this machine: docker: 'compose' is not "
                                              "a docker command. (the builds need it)")


def test_a_dry_run_builds_nothing_and_looks_at_the_last_build(tmp_path):
    docker = FakeDocker(tmp_path)
    hosts = [settings(tmp_path)]
    builds, _ = make(tmp_path, hosts, ["linux/amd64"], dry_run=True, docker=docker)
    assert docker.argv("build") == [] and not builds.for_host(hosts[0]).images  # nothing built before
    docker("docker compose build".split(), env={"DEPLOY_COLOR": "build"})  # a build made earlier
    builds, _ = make(tmp_path, hosts, ["linux/amd64"], dry_run=True, docker=docker)
    last = builds.for_host(hosts[0])
    assert last.last and set(last.images) == {"web", "api"} and len(docker.argv("build")) == 1


@pytest.mark.parametrize("services, message", [
    (("redis",), "hosts.toml: hosts.pi5.build.services: 'redis' has no build: section"),
    (("nosuch",), "hosts.toml: hosts.pi5.build.services: 'nosuch' is not a service of it")])
def test_build_services_must_have_a_build_section(tmp_path, services, message):
    with pytest.raises(ConfigError, match=message):
        make(tmp_path, [settings(tmp_path, services=services)], ["linux/amd64"])


def test_a_compose_file_compose_cannot_read_is_a_usage_error_naming_the_key(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.fail = "config"
    with pytest.raises(ConfigError, match=r"^hosts.toml: hosts.pi5.build.source: .*/compose.yml: docker compose "
                                          r"config failed: config failed: no such thing$") as e:
        make(tmp_path, [settings(tmp_path)], ["linux/amd64"], docker=docker)
    assert e.value.exit_code == 2


def test_an_ssh_builder_is_reached_with_the_hosts_files_ssh_config(tmp_path):
    s = HostSettings(name="pi5", ssh="pi5", ssh_config=str(tmp_path / "my config"),
                     build=Build("local", "ssh://buildbox", str(tmp_path)))
    builder = build.Builder(build.Recipe.of(s), tmp_path)
    wrapper = Path(builder.env["PATH"].split(":")[0]) / "ssh"
    assert f"-F '{tmp_path}/my config' \"$@\"" in wrapper.read_text() and wrapper.stat().st_mode & 0o111
    assert "PATH" not in {**build._ssh_config_env(build.Recipe.of(settings(tmp_path)), tmp_path)}  # no ssh_config


# --- shipping to one host, against a recording remote ---------------------------------------------

def host_images(*images_: tuple[str, tuple[str, ...]], zstd: bool = True, store: str = "[]", free: int = 10 ** 7) -> str:
    lines = [f"{images.MARK}images", *(["zstd"] if zstd else []), f"store {store}", f"free {free} /var/lib/docker"]
    lines += [f"image {i} {json.dumps(list(layers))}" for i, layers in images_]
    return "\n".join(lines) + "\n"


def shipping(tmp_path, inventory: str, load_exit: int = 0):
    s = settings(tmp_path)
    builds, _ = make(tmp_path, [s], ["linux/amd64"])
    remote = RecordingRemote(answer=lambda c: (0, inventory) if c.startswith(f"echo {images.MARK}images") else
                             (load_exit, "") if "docker load" in c else None)
    said: list[str] = []
    return s, builds, remote, said


def test_a_host_with_the_base_receives_the_app_layer_loads_it_and_tags_it(tmp_path):
    s = settings(tmp_path)
    builds, _ = make(tmp_path, [s], ["linux/amd64"])
    built = builds.for_host(s)
    saved = builds.archive(built, built.images["web"])
    remote = RecordingRemote(answer=lambda c: (0, host_images(("sha256:old", (saved.layers[0].diff_id,))))
                             if c.startswith(f"echo {images.MARK}images") else None)
    said: list[str] = []
    shipped = ship.ship(remote, s, builds, Color.GREEN, said.append)
    web, compress = built.images["web"], archive.compressor(True)  # zstd, if this machine has it too
    assert remote.commands[1] == (f"{images.load(compress == 'zstd')} && docker tag {web} myapp:green && "
                                  f"docker tag {web} app-green-api")
    assert len(remote.streamed) == 1
    got = unpack(remote.streamed[0], compress)
    assert saved.layers[1].member in got and saved.layers[0].member not in got  # the base stays home
    assert shipped.bytes == {"myapp:green": len(remote.streamed[0])} and shipped.version == "v1-2-gabc1234-dirty"
    assert any("sending 1 of 2 layers" in line for line in said)


def test_a_host_that_has_the_image_receives_nothing_and_gets_the_tags(tmp_path):
    s = settings(tmp_path)
    builds, docker = make(tmp_path, [s], ["linux/amd64"])
    web = builds.for_host(s).images["web"]
    remote = RecordingRemote(answer=lambda c: (0, host_images((web, ()))) if "images" in c[:20] else None)
    shipped = ship.ship(remote, s, builds, Color.BLUE, lambda m: None)
    assert shipped.bytes == {"myapp:blue": 0} and remote.streamed == [] and docker.argv("save") == []  # not even saved
    assert remote.commands[1] == f"docker tag {web} myapp:blue && docker tag {web} app-blue-api"


def test_the_containerd_store_gets_whole_images_and_gzip_without_zstd(tmp_path):
    s = settings(tmp_path)
    builds, _ = make(tmp_path, [s], ["linux/amd64"])
    saved = builds.archive(builds.for_host(s), builds.for_host(s).images["web"])
    containerd = '[["driver-type","io.containerd.snapshotter.v1"]]'
    remote = RecordingRemote(answer=lambda c: (0, host_images(("x", (saved.layers[0].diff_id,)), zstd=False,
                                                              store=containerd)) if "images" in c[:20] else None)
    said: list[str] = []
    ship.ship(remote, s, builds, Color.BLUE, said.append)
    assert remote.commands[1].startswith("gzip -dc | docker load && docker tag ")
    assert {layer.member for layer in saved.layers} <= set(unpack(remote.streamed[0], "gzip"))
    assert any("containerd store, which loads no partial archive: sending whole images" in line for line in said)


@pytest.mark.parametrize("inventory, load_exit, reason", [
    (host_images(free=3), 0, "loading it needs about"),
    (host_images(), 1, "myapp:blue: docker load on the host failed: exit code 1"),
    ("Cannot connect to the Docker daemon\n", 0, "cannot list the host's images")])
def test_a_host_that_cannot_take_the_image_fails_the_ship_step(tmp_path, inventory, load_exit, reason):
    s = settings(tmp_path)
    builds, _ = make(tmp_path, [s], ["linux/amd64"])
    remote = RecordingRemote(answer=lambda c: (0, inventory) if "images" in c[:20] else
                             (load_exit, "") if "docker load" in c else None)
    with pytest.raises(StepFailed, match=reason) as e:
        ship.ship(remote, s, builds, Color.BLUE, lambda m: None)
    assert e.value.step == "ship"


def test_a_dry_run_plans_the_stream_and_sends_nothing(tmp_path):
    s = settings(tmp_path)
    builds, _ = make(tmp_path, [s], ["linux/amd64"])
    inner = RecordingRemote(answer=lambda c: (0, host_images()) if "images" in c[:20] else None)
    dry = DryRunRemote(inner)
    ship.ship(dry, s, builds, Color.BLUE, lambda m: None)
    assert [kind for kind, _ in dry.plan] == ["read", "run"] and inner.streamed == []
    assert "docker load && docker tag" in dry.plan[1][1] and "# stdin: 2 of 2 layers" in dry.plan[1][1]


# --- the sequence on the fake host ---------------------------------------------------------------

def test_the_deploy_ships_before_prepare_and_up_neither_builds_nor_pulls(tmp_path):
    s = HostSettings(name="pi5", ssh="pi5", settle=0, prepare=("git pull --ff-only",),
                     build=Build("local", "", str(tmp_path)))
    builds, _ = make(tmp_path, [s], ["linux/amd64"])
    host = FakeHost(running={"blue": ["web", "redis", "worker", "beat"]},
                    record=json.dumps({"live": "blue", "colors": {}}))
    r = Deploy(host.remote, s, builds=builds).run()
    assert r.outcome == DEPLOYED and r.shipped and r.shipped["myapp:green"] > 0
    assert host.index("docker load") < host.index("git pull --ff-only") < host.index("docker stop")
    ups = [m.group(1) for c in host.commands for m in re.finditer(r"-p app-green -f compose.yml up ([^;&|]*)", c)]
    assert len(ups) == 1 and "--no-build --pull never" in ups[0]  # one create: the front and the background
    rec = json.loads(host.record)
    assert rec["colors"]["green"]["version"] == "v1-2-gabc1234-dirty"
    history = next(c for c in host.commands if "app.history.jsonl" in c and '"result":"deployed"' in c)
    assert f'"shipped":{{"myapp:green":{r.shipped["myapp:green"]}}}' in history


def test_a_failed_ship_changes_nothing_on_the_host(tmp_path):
    s = HostSettings(name="pi5", ssh="pi5", settle=0, build=Build("local", "", str(tmp_path)))
    builds, _ = make(tmp_path, [s], ["linux/amd64"])
    host = FakeHost(running={"blue": ["web", "redis", "worker", "beat"]}, fail=("docker load",))
    r = Deploy(host.remote, s, builds=builds).run()
    assert (r.outcome, r.step) == (ROLLED_BACK, "ship") and "(nothing was changed)" in r.reason
    assert host.state("blue") == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert not any("docker stop" in c or re.search(r"compose.yml (up|stop) ", c) for c in host.commands)


def test_where_host_keeps_up_as_it_was():
    s = HostSettings(name="pi5", ssh="pi5")
    assert "--no-build" not in compose.up(s, "blue", ("web",)) and "--pull" not in cpu.start_capped(
        s, "blue", ("worker",), 0.5, 30)
    local = HostSettings(name="pi5", ssh="pi5", build=Build(where="local"))
    assert "--no-build --pull never web" in compose.up(local, "blue", ("web",))
    assert "--no-build --pull never worker" in cpu.start_capped(local, "blue", ("worker",), 0.5, 30)


# --- settings -------------------------------------------------------------------------------------

def hosts_file(tmp_path: Path, build_table: str, compose_file: bool = True) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    if compose_file:
        (tmp_path / "src" / "compose.yml").write_text("services: {}\n")
    path = tmp_path / "hosts.toml"
    path.write_text(f"[defaults.build]\n{build_table}\n[hosts.pi5]\nssh = \"pi5\"\n")
    return path


def test_the_build_table_loads_with_the_source_relative_to_the_hosts_file(tmp_path):
    s = loader.load(hosts_file(tmp_path, 'where = "local"\nbuilder = "ssh://deploy@buildbox:2222"\n'
                                          'source = "src"\nservices = ["web"]')).hosts["pi5"]
    assert s.build == Build("local", "ssh://deploy@buildbox:2222", str(tmp_path / "src"), ("web",))
    assert loader.load(hosts_file(tmp_path, "")).hosts["pi5"].build.where == "host"


@pytest.mark.parametrize("table, compose_file, message", [
    ('where = "remote"', True, 'defaults.build.where: \'remote\': expected "host"'),
    ('where = "local"\nbuilder = "buildbox"', True, "defaults.build.builder: 'buildbox': expected \"\" \\(this machine"),
    ('where = "local"\nbuilder = "ssh://-oProxyCommand=x"', True, "defaults.build.builder:"),
    ('where = "local"\nsource = "nosuch"', True, "defaults.build.source: .*nosuch is not a folder"),
    ('where = "local"\nsource = "src"', False, "hosts.pi5.build.source: compose.yml not found in"),
])
def test_a_wrong_build_table_is_one_line(tmp_path, table, compose_file, message):
    with pytest.raises(ConfigError, match=message) as e:
        loader.load(hosts_file(tmp_path, table, compose_file))
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_check_warns_of_a_prepare_that_builds_when_the_build_is_local():
    s = HostSettings(name="pi5", ssh="pi5", prepare=("git pull", "docker compose build -q"),
                     build=Build(where="local"))
    assert ("warn", "prepare", 'prepare[1] builds on the host although build.where is "local" (the images are '
            "built off the host and shipped): remove it from prepare") in check.settings_warnings(s)
    assert check.settings_warnings(HostSettings(name="pi5", ssh="pi5", prepare=s.prepare)) == []


def test_fab_check_says_whether_the_builder_answers_and_the_host_has_room(tmp_path):
    s = settings(tmp_path)
    docker = FakeDocker(tmp_path)
    docker("docker compose build".split(), env={"DEPLOY_COLOR": "build"})  # the builder's last build: 2 MB
    rows = [CheckResult([("ok", "ssh", "x")], {"docker_free": "10240 /var/lib/docker"}),
            CheckResult([("ok", "ssh", "x")], {"docker_free": "1024 /var/lib/docker"})]
    build.check([s, settings(tmp_path, "vm1")], rows, "hosts.toml", run=docker)
    assert ("ok", "builder", "ssh://buildbox answers") in rows[0].items
    assert ("ok", "image_space", "10.5 MB free in /var/lib/docker; the images need about 4.0 MB") in rows[0].items
    assert rows[1].items[-1][:2] == ("fail", "image_space") and "make room" in rows[1].items[-1][2]
    docker.fail = "version"
    rows = [CheckResult([("ok", "ssh", "x")], {"docker_free": "10240 /var/lib/docker"})]
    build.check([s], rows, "hosts.toml", run=docker)
    assert rows[0].items[1][:2] == ("fail", "builder") and "cannot be reached" in rows[0].items[1][2]


# --- the version people read, the record, the tables ------------------------------------------------

def test_the_version_shown_is_the_recorded_one_while_the_colour_runs_its_images():
    s = HostSettings(name="pi5", ssh="pi5")
    found = facts.parse("@@fbg:containers\napp-blue web running 0 sha256:aac978931a89ff 1 0\n")
    entry = {"images": {"web": "sha256:aac978931a89ff"}, "version": "v1.2-dirty", "commit": "abc"}
    found.record = Record.from_json({"colors": {"blue": entry}})
    assert facts.version(s, found, "blue") == "v1.2-dirty"
    entry.pop("version")
    found.record = Record.from_json({"colors": {"blue": entry}})
    assert facts.version(s, found, "blue") == "abc"  # built on the host: the commit of dir
    entry["images"]["web"] = "sha256:other"  # recreated by hand since
    found.record = Record.from_json({"colors": {"blue": entry}})
    assert facts.version(s, found, "blue") == "web@aac978931a89"
    assert facts.version(s, found, "green") == "-"


def test_the_record_and_history_keep_the_version_and_what_was_shipped():
    rec = Record().with_color(Color.GREEN, {"web": "sha256:1"}, "", {}, "v2").to_json()
    assert rec["colors"]["green"]["version"] == "v2" and record.record_problem(rec) is None
    assert "version" not in Record().with_color(Color.GREEN, {}, "abc").to_json()["colors"]["green"]
    line = json.loads(record.history_line("deploy", "pi5", "deployed", shipped={"myapp:green": 8704}))
    assert record.history_problem(line) is None
    assert record.history_problem({**line, "shipped": {"x": -1}}) == "has shipped.x -1, not a number of bytes"
    assert record.history_problem({**line, "shipped": [1]}) == "has shipped as a list, not an object"


def test_the_table_says_how_much_was_shipped():
    results = [DeployResult("pi5", "deploy", DEPLOYED, "blue", "green", version="v2", shipped={"a": 8700, "b": 0}),
               DeployResult("vm1", "deploy", DEPLOYED, "blue", "green", version="v2", shipped={"a": 0})]
    console = report.Console(record=True, width=200)
    console.print(report.deploy_table(results))
    text = console.export_text()
    assert "shipped" in text and "8.7 kB" in text and "0 B (had it)" in text
    console.print(report.deploy_table([DeployResult("pi5", "deploy", DEPLOYED)]))
    assert "shipped" not in console.export_text()  # where nothing is built off the host: no column


def test_a_save_that_fails_fails_the_ship_step(tmp_path):
    s = settings(tmp_path)
    builds, docker = make(tmp_path, [s], ["linux/amd64"])
    docker.fail = "save"
    remote = RecordingRemote(answer=lambda c: (0, host_images()) if "images" in c[:20] else None)
    with pytest.raises(StepFailed, match="myapp:blue: docker save on ssh://buildbox failed: save failed"):
        ship.ship(remote, s, builds, Color.BLUE, lambda m: None)
    assert remote.streamed == []


# --- the byte stream over a channel of the SSH connection (paramiko faked) ------------------------

class FakeChannel:
    """A paramiko channel as SshRemote.stream uses it: takes chunks, may end early or stall."""

    def __init__(self, exits_after: int | None = None, exit_code: int = 0, timeout_at: int | None = None):
        self.sent: list[bytes] = []
        self.exits_after, self.exit_code, self.timeout_at = exits_after, exit_code, timeout_at
        self.command, self.shut, self.closed = "", False, False
        self.out, self.err = b"Loaded image ID: sha256:1\n", b""

    def settimeout(self, seconds: float) -> None:
        pass

    def exec_command(self, command: str) -> None:
        self.command = command

    def sendall(self, chunk: bytes) -> None:
        if self.timeout_at is not None and len(self.sent) == self.timeout_at:
            raise socket.timeout("timed out")
        self.sent.append(chunk)

    def exit_status_ready(self) -> bool:
        return self.shut or (self.exits_after is not None and len(self.sent) >= self.exits_after)

    def shutdown_write(self) -> None:
        self.shut = True

    def recv_ready(self) -> bool:
        return bool(self.out)

    def recv_stderr_ready(self) -> bool:
        return bool(self.err)

    def recv(self, n: int) -> bytes:
        data, self.out = self.out, b""
        return data

    def recv_stderr(self, n: int) -> bytes:
        data, self.err = self.err, b""
        return data

    def recv_exit_status(self) -> int:
        return self.exit_code

    def close(self) -> None:
        self.closed = True


def ssh_remote(chan: FakeChannel, active: bool = True):
    from types import SimpleNamespace

    from tasks.host.remote import SshRemote

    remote = object.__new__(SshRemote)
    transport = SimpleNamespace(open_session=lambda timeout: chan, is_active=lambda: active)
    remote.name, remote.settings = "pi5", HostSettings(name="pi5", ssh="pi5")
    remote.conn = SimpleNamespace(transport=transport, is_connected=active)
    return remote


def test_the_stream_sends_each_chunk_then_ends_the_input_and_reads_the_answer():
    chan, counted = FakeChannel(), []
    res = ssh_remote(chan).stream("zstd -dcq | docker load", [b"a" * 10, b"b" * 5], 60, counted.append)
    assert chan.sent == [b"a" * 10, b"b" * 5] and chan.shut and chan.closed and counted == [10, 5]
    assert (res.exited, res.stdout) == (0, "Loaded image ID: sha256:1\n") and chan.command == "zstd -dcq | docker load"


def test_a_command_that_ends_early_stops_the_stream_and_what_makes_it():
    made = []

    def chunks():
        try:
            for i in range(100):
                made.append(i)
                yield b"x"
        finally:
            made.append("closed")

    chan = FakeChannel(exits_after=2, exit_code=1)
    chan.err = b"Error processing tar file: no space left on device\n"
    res = ssh_remote(chan).stream("docker load", chunks(), 60)
    assert len(chan.sent) == 2 and made[-1] == "closed" and len(made) < 10
    assert res.exited == 1 and res.why() == "Error processing tar file: no space left on device"


def test_a_stalled_stream_times_out_and_a_lost_connection_is_unreachable():
    from tasks.errors import Unreachable
    from tasks.host.remote import TIMED_OUT

    res = ssh_remote(FakeChannel(timeout_at=1)).stream("docker load", [b"x", b"y"], 5)
    assert res.exited == TIMED_OUT and res.why() == "timed out after 5 s"

    class Broken(FakeChannel):
        def sendall(self, chunk):
            raise EOFError()

    with pytest.raises(Unreachable, match="the connection was lost"):
        ssh_remote(Broken(), active=False).stream("docker load", [b"x"], 5)


def test_the_bars_show_each_hosts_bytes_at_a_terminal_and_only_count_elsewhere(tmp_path):
    save(tmp_path / "v1.tar", [BASE, APP_V1])
    part = archive.Archive(tmp_path / "v1.tar").part(set(), True, "gzip")
    console = report.Console(record=True, force_terminal=True, width=120)
    bars = report.Bars(console)
    bar = bars("pi5", "myapp:green", part)
    part.fed = part.size // 2
    bar.sent(1000)
    bar.sent(500)
    bar.done()
    assert bar.total == 1500 and bars.progress is None  # stopped with the last bar
    shown = console.export_text()
    assert "pi5 myapp:green" in shown and "50 %  1.5 kB sent" in shown
    plain = report.Bars(report.Console(record=True, force_terminal=False))("pi5", "x", part)
    plain.sent(7)
    assert type(plain) is archive.Count and plain.total == 7
