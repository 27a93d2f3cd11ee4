"""The task that starts a hosts file: init. Its docstring is the `fab -l` and `fab --help init` text.

Light: it reads a local folder and writes one file; no host is contacted."""

from __future__ import annotations

import os
from pathlib import Path

from invoke import task

from .edge import TASK, _one_line, edge
from .errors import UsageError


@task(help={"hosts-file": "the file to write (default: hosts.toml in the current folder)"}, **TASK)
@edge
def init(c, hosts_file="hosts.toml"):
    """Write a commented hosts.toml into the current folder, to edit.

    If a compose file is there (compose.yaml, compose.yml, docker-compose.yaml,
    docker-compose.yml), front, background and shared are guessed from its services' usual
    names: web, app, api ... in front; worker, beat, celery, scheduler ... in the background;
    db, postgres, mysql, redis, rabbitmq, a broker ... shared by both colours. Then it prints
    what you must still fill in, and the changes the compose file still lacks (DEPLOY_PORT,
    DEPLOY_COLOR, the secrets' env_file, init: true on workers). No host is contacted.

    It never overwrites: a file that exists already is exit 2, and nothing is written.

    Exit code: 0 written, 2 the file exists already (or cannot be written).
    """
    from .config import composefile, starter

    _one_line("--hosts-file", hosts_file)
    path = Path(hosts_file)
    if path.exists() or path.is_symlink():
        raise UsageError(f"{path}: exists already: init never overwrites it (move it away, or name another "
                         "file with --hosts-file)")
    folder = path.resolve().parent
    found = next((folder / n for n in composefile.NAMES if (folder / n).is_file()), None)
    compose = _read(found)
    g = starter.guess(compose)
    if not g.front:
        g.front = ["web"]  # no compose file (or no service): the built-in default, to edit
    app = starter.app_name(folder.name)
    builds = any("build" in keys for keys in compose.services.values()) if found else True
    text = starter.hosts_toml(app, found.name if found else "compose.yml", g, builds, g.unplaced,
                              uploaded=found is not None)
    _write_new(path, text)
    _say(path, found, compose, g, starter.compose_changes(compose, g, app) if found else [])


def _read(found: Path | None):
    from .config import composefile

    if found is None:
        return composefile.ComposeFile()
    try:
        return composefile.read(found.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{found}: cannot be read: {getattr(e, 'strerror', None) or e}") from None


def _write_new(path: Path, text: str) -> None:
    """Create the file, never over one that appeared meanwhile (O_EXCL)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise UsageError(f"{path}: exists already: init never overwrites it") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot be written: {e.strerror or e}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _say(path: Path, found: Path | None, compose, g, changes: list[str]) -> None:
    from .cmdline import typed
    from .config.starter import HOST

    lines = [f"wrote {path}" + (f", from the services of {found.name}:" if found else
                                " (no compose file here: front, background and shared are the defaults)")]
    if found:
        lines += [f"  {name:<11}{', '.join(services) or '-'}" for name, services in
                  (("front", g.front), ("background", g.background), ("shared", g.shared),
                   ("not placed", g.unplaced)) if services or name != "not placed"]
        lines += [f"  could not read: {what}" for what in compose.unread]
    lines += ["", f"Fill in, in {path}:",
              f"  - hosts.{HOST}: rename it to your host's name, and set its ssh (an alias of ~/.ssh/config, "
              "or [user@]host[:port])",
              "  - health.path: a URL of your web service that answers 2xx/3xx (now /health/)",
              "  - front, background, shared: check the guesses (the first front service publishes the web port)",
              "  - secrets.env_file or secrets.command: where your production settings come from, if any",
              "  - prepare: how the new colour's image is made on the host (or build.where = \"local\")"]
    if found:
        lines += ["", f"Compose changes {found.name} still needs:" if changes else
                  f"{found.name} has the changes blue-green needs (DEPLOY_PORT, DEPLOY_COLOR, DEPLOY_ENV_FILE, init)."]
        lines += [f"  - {change}" for change in changes]
    then = ", ".join(f"{typed(task)} --host {HOST}" for task in ("setup", "check", "deploy"))
    lines += ["", f"Then: {then}"]
    print("\n".join(lines))
