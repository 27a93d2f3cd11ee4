"""build.where = "local": the images built once per platform, off the hosts, before any host's
sequence changes anything, and saved on this machine's disk for tasks/host/ship.py to send each
host what it lacks.

The builder is a Docker engine: this machine's (builder = ""), or a DOCKER_HOST such as
ssh://buildbox (reached by docker's own ssh, with the hosts file's ssh_config when it names one).
This machine runs the docker CLI against it:

- `docker compose build` in build.source, as the compose project <app>-build with
  DEPLOY_COLOR=build (the builder's tags never touch a colour's), for each platform the hosts need
  (DOCKER_DEFAULT_PLATFORM when a host's is not the builder's: compose's build has no --platform);
- `docker save` of each image by its ID, one archive each, to a temporary folder removed at the end,
  when a first host lacks it;
- `git describe --always --dirty --tags` of build.source: the version people read in the tables.

The names an image gets on a host are those the new colour's compose file gives it (`docker compose
config` with that colour's DEPLOY_COLOR and project; a service with `build:` and no `image:` is
<project>-<service>, as compose names it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .archive import Archive, ArchiveError, Count, Part, human
from .config.schema import Color, HostSettings
from .errors import ConfigError
from .life import run_lines, watching
from .shell.images import room

BUILD = "build"  # the builder's DEPLOY_COLOR and project suffix: <app>-build
Run = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Recipe:
    """What one build makes; the hosts that share a recipe (and a platform) share its build."""

    builder: str
    source: str
    compose_file: str
    app: str
    services: tuple[str, ...]
    ssh_config: str

    @classmethod
    def of(cls, s: HostSettings) -> Recipe:
        return cls(s.build.builder, s.build.source, s.compose_file, s.app, s.build.services, s.ssh_config)

    @property
    def where(self) -> str:
        return self.builder or "this machine's Docker"


@dataclass
class Built:
    """One recipe for one platform: the image ID of each service, and (once a host lacks one) each
    image saved on this machine."""

    recipe: Recipe
    platform: str
    images: dict[str, str] = field(default_factory=dict)  # service -> image ID
    sizes: dict[str, int] = field(default_factory=dict)  # image ID -> its bytes (docker image inspect)
    archives: dict[str, Archive] = field(default_factory=dict)  # image ID -> its archive, saved when first needed
    version: str = ""  # git describe of the source
    error: str = ""  # why there is nothing to send (the build failed, the host's platform is unknown)
    last: bool = False  # a dry run: the builder's last build, not a new one
    lock: threading.Lock = field(default_factory=threading.Lock)  # one save of an image for all hosts


class Builder:
    """The docker CLI on this machine, talking to the recipe's builder."""

    def __init__(self, recipe: Recipe, tmp: Path, run: Run = run_lines):
        self.recipe, self.run_ = recipe, run
        self.env = {**os.environ, **_ssh_config_env(recipe, tmp)}
        if recipe.builder:
            self.env["DOCKER_HOST"] = recipe.builder
        self.platform = ""  # the builder's, once reachable() said so

    def run(self, argv: list[str], timeout: float, env: dict[str, str] | None = None,
            on_line: Callable[[str], None] | None = None) -> subprocess.CompletedProcess:
        """argv run here (against the builder), its output kept; on_line: each line of it as it comes."""
        lines = {"on_line": on_line} if on_line else {}  # (a test's fake run may not take it)
        try:
            return self.run_(argv, cwd=self.recipe.source, env={**self.env, **(env or {})}, capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL, **lines)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:g} s")
        except OSError as e:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: {e.strerror or e}")

    def compose(self, color: str, port: int, *args: str, timeout: float = 120, env: dict | None = None,
                on_line: Callable[[str], None] | None = None):
        argv = ["docker", "compose", "-p", f"{self.recipe.app}-{color}", "-f", self.recipe.compose_file, *args]
        return self.run(argv, timeout, {"DEPLOY_COLOR": color, "DEPLOY_PORT": str(port), **(env or {})}, on_line)

    def reachable(self, timeout: float = 60) -> str:
        """"" when the builder answers (its platform noted), else why not, in one line."""
        res = self.run(["docker", "compose", "version"], timeout)
        if res.returncode != 0:
            return f"docker compose does not run on this machine: {_last_line(res)} (the builds need it)"
        res = self.run(["docker", "version", "-f", "{{.Server.Os}}/{{.Server.Arch}}"], timeout)
        if res.returncode != 0 or "/" not in res.stdout:
            return f"the builder {self.recipe.where} cannot be reached: {_last_line(res)}"
        self.platform = res.stdout.strip()
        return ""

    def config(self, color: str, port: int) -> dict:
        """The compose file as compose reads it for a colour (its services, images, builds)."""
        res = self.compose(color, port, "config", "--format", "json")
        if res.returncode != 0:
            raise ConfigError(f"{self.recipe.source}/{self.recipe.compose_file}: docker compose config failed: "
                              f"{_last_line(res)}")
        return json.loads(res.stdout)

    def version(self) -> str:
        res = self.run(["git", "-C", self.recipe.source, "describe", "--always", "--dirty", "--tags"], 30)
        return res.stdout.strip() if res.returncode == 0 else ""


def services_to_build(recipe: Recipe, config: dict) -> tuple[str, ...]:
    """build.services, or every service with `build:`; ValueError for a name that has none."""
    services = config.get("services") or {}
    with_build = tuple(name for name, service in services.items() if service.get("build"))
    for name in recipe.services:
        if name not in with_build:
            why = "has no build: section" if name in services else "is not a service of it"
            raise ValueError(f"{name!r} {why} ({recipe.source}/{recipe.compose_file}: services with build: "
                             f"{', '.join(with_build) or 'none'})")
    if not with_build:
        raise ValueError(f"{recipe.source}/{recipe.compose_file} has no service with build: (nothing to build)")
    return recipe.services or with_build


def image_names(config: dict, services: tuple[str, ...]) -> dict[str, str]:
    """service -> the image name compose gives it: its `image:`, else <project>-<service>."""
    return {name: config["services"][name].get("image") or f"{config['name']}-{name}" for name in services}


class Builds:
    """Every build of one `fab deploy`, made before any host's sequence starts; the archives are
    removed by close(). Thread-safe reads for the hosts' sequences (names are resolved on demand)."""

    def __init__(self, note: Callable[[str], None], dry_run: bool = False, run: Run = run_lines,
                 meter=None):
        self.note, self.dry_run, self.run = note, dry_run, run
        self.meter = meter  # (host, image name, part) -> a Count that shows itself; None: counts only
        self.tmp = Path(tempfile.mkdtemp(prefix="fab-build-"))
        self.builders: dict[Recipe, Builder] = {}
        self.services: dict[Recipe, tuple[str, ...]] = {}  # what each recipe builds
        self.configs: dict[Recipe, dict] = {}  # its compose file as the build reads it
        self.ports: dict[Recipe, int] = {}  # DEPLOY_PORT of the build (blue's: the compose file may need one)
        self.budgets: dict[Recipe, float] = {}  # seconds a build or a save may take: timeouts.prepare
        self.hosts: dict[str, Built] = {}  # host name -> what it gets
        self._names: dict[tuple, dict[str, str]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def builder(self, recipe: Recipe) -> Builder:
        if recipe not in self.builders:
            self.builders[recipe] = Builder(recipe, self.tmp, self.run)
        return self.builders[recipe]

    def read_recipes(self, hosts: list[HostSettings], hosts_file: str) -> None:
        """What each recipe builds, from its compose file (no host, no builder needed): a compose
        file compose cannot read, or a wrong build.services, is a usage error before anything runs."""
        for s in hosts:
            recipe = Recipe.of(s)
            self.budgets[recipe] = max(self.budgets.get(recipe, 0.0), s.timeouts.prepare)
            if recipe in self.services:
                continue
            self.ports[recipe] = s.port(Color.BLUE)
            try:
                self.configs[recipe] = self.builder(recipe).config(BUILD, self.ports[recipe])
            except ConfigError as e:
                raise ConfigError(f"{hosts_file}: hosts.{s.name}.build.source: {e}") from None
            try:
                self.services[recipe] = services_to_build(recipe, self.configs[recipe])
            except ValueError as e:
                raise ConfigError(f"{hosts_file}: hosts.{s.name}.build.services: {e}") from None

    def make(self, hosts: list[HostSettings], platforms: list[str | None]) -> None:
        """Build each recipe once per platform the hosts need (in a dry run: look at the last build)."""
        groups: dict[tuple[Recipe, str], list[str]] = {}
        for s, platform in zip(hosts, platforms):
            if platform is None:
                self.hosts[s.name] = Built(Recipe.of(s), "", error="its platform could not be read before the build")
                continue
            groups.setdefault((Recipe.of(s), platform), []).append(s.name)
        for (recipe, platform), names in groups.items():
            built = self.look(recipe, platform) if self.dry_run else self.build(recipe, platform, names)
            for name in names:
                self.hosts[name] = built

    def build(self, recipe: Recipe, platform: str, hosts: list[str]) -> Built:
        builder, services = self.builder(recipe), self.services[recipe]
        built = Built(recipe, platform, version=builder.version())
        if why := builder.reachable():
            built.error = why
            return built
        other = {} if platform == builder.platform else {"DOCKER_DEFAULT_PLATFORM": platform}
        self.note(f"build: {', '.join(services)} for {platform} on {recipe.where} from {recipe.source} "
                  f"({built.version or 'no git version'}), for {', '.join(hosts)}")
        started = time.monotonic()
        with watching(self.note, "build") as seen:
            res = builder.compose(BUILD, self.ports[recipe], "--progress", "plain", "build", *services,
                                  timeout=self.budgets[recipe], env=other, on_line=seen)
        if res.returncode != 0:
            tail = (res.stdout + res.stderr).strip().splitlines()[-15:]
            self.note("build failed; its last lines:\n" + "\n".join(f"  {line}" for line in tail))
            built.error = f"the build on {recipe.where} failed: {_last_line(res)} (nothing was changed on any host)"
            return built
        built.error = self.find(builder, built, services)
        if not built.error:
            self.note(f"build: done in {time.monotonic() - started:.1f} s: " + ", ".join(
                f"{service} {image[7:19]} ({human(built.sizes[image])})" for service, image in built.images.items()))
        return built

    def find(self, builder: Builder, built: Built, services: tuple[str, ...]) -> str:
        """The built images' IDs and sizes ("", or why they cannot be had)."""
        names = image_names(self.configs[built.recipe], services)
        res = builder.run(["docker", "image", "inspect", "-f", "{{.Id}} {{.Os}}/{{.Architecture}} {{.Size}}",
                           *dict.fromkeys(names.values())], 120)
        if res.returncode != 0:
            return f"the built images are not on {built.recipe.where}: {_last_line(res)}"
        found = [line.split() for line in res.stdout.splitlines() if len(line.split()) == 3]
        wrong = [platform for _, platform, _ in found if not built.platform.startswith(platform)]
        if wrong:
            return f"the builder made {wrong[0]} images, not {built.platform}"
        by_name = dict(zip(dict.fromkeys(names.values()), (image for image, _, _ in found)))
        built.images = {service: by_name[name] for service, name in names.items()}
        built.sizes = {image: int(size) for image, _, size in found}
        return ""

    def archive(self, built: Built, image: str) -> Archive:
        """The image saved on this machine (`docker save` by ID: no tag travels), once, when a first
        host lacks it (raises ArchiveError). An image every host has is never saved."""
        with built.lock:
            if image not in built.archives:
                path = self.tmp / f"{built.platform.replace('/', '-')}-{image[7:19]}.tar"
                res = self.builder(built.recipe).run(["docker", "save", "-o", str(path), image],
                                                      self.budgets[built.recipe])
                if res.returncode != 0:
                    raise ArchiveError(f"docker save on {built.recipe.where} failed: {_last_line(res)}")
                built.archives[image] = Archive(path)
            return built.archives[image]

    def look(self, recipe: Recipe, platform: str) -> Built:
        """A dry run: nothing is built; the builder's last build (if it has one for this platform) tells
        each host how much it would receive of what that build made."""
        builder = self.builder(recipe)
        built = Built(recipe, platform, version=builder.version(), last=True)
        self.note(f"build (dry run, nothing built): {', '.join(self.services[recipe])} for {platform} on "
                  f"{recipe.where} from {recipe.source} ({built.version or 'no git version'})")
        if why := builder.reachable():
            built.error = why
        elif self.find(builder, built, self.services[recipe]):
            built.images = {}  # no last build to compare with
        return built

    def last_build(self, recipe: Recipe) -> tuple[str, int | None]:
        """fab check: why the builder cannot build ("" when it can), and the bytes of the images it
        last built (None: none, or not for its own platform)."""
        builder = self.builder(recipe)
        if why := builder.reachable():
            return why, None
        built = Built(recipe, builder.platform)
        return "", None if self.find(builder, built, self.services[recipe]) else sum(built.sizes.values())

    def bar(self, host: str, name: str, part: Part) -> Count:
        """What counts (and shows, at a terminal) the bytes sent of one part to one host."""
        return self.meter(host, name, part) if self.meter else Count()

    def for_host(self, s: HostSettings) -> Built:
        return self.hosts.get(s.name) or Built(Recipe.of(s), "", error="no build was made for this host")

    def names(self, s: HostSettings, color: Color) -> dict[str, str]:
        """service -> the image name the colour's compose file gives it (on this host's settings)."""
        recipe = Recipe.of(s)
        key = (recipe, color, s.port(color))
        with self._lock:
            if key not in self._names:
                config = self.builder(recipe).config(color, s.port(color))
                self._names[key] = image_names(config, self.services[recipe])
            return self._names[key]


def _ssh_config_env(recipe: Recipe, tmp: Path) -> dict[str, str]:
    """An ssh:// builder is reached by docker's own `ssh`: with the hosts file's ssh_config, through
    a wrapper that adds `-F` (docker has no option for it)."""
    real = shutil.which("ssh")
    if not recipe.builder.startswith("ssh://") or not recipe.ssh_config or not real:
        return {}
    folder = tmp / f"ssh-{hashlib.sha256(recipe.ssh_config.encode()).hexdigest()[:12]}"
    folder.mkdir(exist_ok=True)
    wrapper = folder / "ssh"
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(real)} -F {shlex.quote(recipe.ssh_config)} \"$@\"\n")
    wrapper.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def _last_line(res: subprocess.CompletedProcess) -> str:
    for text in (res.stderr, res.stdout):
        lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return f"exit code {res.returncode}"


def check(hosts: list[HostSettings], rows: list, hosts_file: str, run: Run = subprocess.run) -> None:
    """fab check, build.where = "local": whether each builder answers, and whether each host's Docker
    has room for the images its builder last built (rows: the hosts' CheckResults, amended)."""
    local = [(s, row) for s, row in zip(hosts, rows)
             if s.build.local and any(name == "ssh" and level == "ok" for level, name, _ in row.items)]
    if not local:
        return
    builds = Builds(lambda message: None, run=run)
    try:
        builds.read_recipes([s for s, _ in local], hosts_file)
        looked: dict[Recipe, tuple[str, int | None]] = {}
        for s, row in local:
            recipe = Recipe.of(s)
            if recipe not in looked:
                looked[recipe] = builds.last_build(recipe)
            why, size = looked[recipe]
            row.items.append(("fail", "builder", why) if why else ("ok", "builder", f"{recipe.where} answers"))
            row.items.append(_room(row.info.get("docker_free", ""), size))
    finally:
        builds.close()


def _room(free: str, size: int | None) -> tuple[str, str, str]:
    """The image_space check line: room for the images in the host's Docker root dir."""
    kb, _, root = free.partition(" ")
    if not kb.isdigit():
        return "fail", "image_space", "cannot read the free space of Docker's root dir (docker info, df)"
    have = f"{human(int(kb) * 1024)} free in {root}"
    if size is None:
        return "ok", "image_space", f"{have} (no image built yet to compare with)"
    need = room(size)
    if need > int(kb) * 1024:
        return ("fail", "image_space", f"{have}; loading the images needs about {human(need)} (twice their "
                f"{human(size)}): make room (docker image prune, fab cleanup --prune-images)")
    return "ok", "image_space", f"{have}; the images need about {human(need)}"
