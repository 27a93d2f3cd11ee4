"""What `fab init` writes and says: a short commented hosts.toml, with front, background and shared
guessed from the compose file's services by their usual names; what the user must still fill in;
and the changes the compose file still lacks for blue-green (README, "The compose file").

Pure: the task (tasks/init.py) reads the folder and writes the file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .composefile import ComposeFile
from .schema import NAME

HOST = "myhost"  # the host table init writes: the user renames it
# by name (a service's name, or its image's for shared ones), first match wins; checked in this order
SHARED = re.compile(r"^(db|database|postgres(ql)?|pg|mysql|mariadb|redis|valkey|rabbitmq|rabbit|broker|memcached?|"
                    r"mongo(db)?|elasticsearch|opensearch)([-_]?\d+)?$")
BACKGROUND = re.compile(r"(worker|beat|celery|scheduler|^rq|cron|queue|consumer|flower|dramatiq|huey|sidekiq)")
FRONT = ("web", "app", "api", "django", "backend", "frontend", "server", "site", "wsgi", "asgi", "gunicorn",
         "uvicorn", "flask", "rails", "node", "nginx", "caddy")


@dataclass
class Guess:
    front: list[str] = field(default_factory=list)  # the first one is the web service
    background: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)  # names it knows nothing of: left out


def image_name(text: str) -> str:
    """The repository of an image: "myapp" of "myapp:${DEPLOY_COLOR:-blue}" or of "ghcr.io/me/myapp"."""
    text = text.strip().strip("'\"")
    last = text.rsplit("/", 1)[-1]
    return text[:len(text) - len(last)] + last.split(":", 1)[0].split("@", 1)[0]


def guess(compose: ComposeFile) -> Guess:
    """front, background and shared from the services' names (and commands, and images)."""
    g = Guess()
    for name, keys in compose.services.items():
        if not NAME.match(name):
            compose.unread.append(f"service {name!r}: not a name the hosts file takes (letters, digits, '_', '.', '-')")
            continue
        low, command = name.lower(), keys.get("command", "").lower()
        image = image_name(keys.get("image", "")).rsplit("/", 1)[-1].lower()
        if SHARED.match(low) or ("build" not in keys and SHARED.match(image)):
            g.shared.append(name)
        elif BACKGROUND.search(low) or re.search(r"celery\b.*\b(worker|beat)\b|\brq\b.*\bworker\b", command):
            g.background.append(name)
        elif low in FRONT or low.split("-")[0].split("_")[0] in FRONT:
            g.front.append(name)
        else:
            g.unplaced.append(name)
    if not g.front and g.unplaced:  # front may not be empty: the first unknown one that publishes a port
        web = next((n for n in g.unplaced if "ports" in compose.services[n]), g.unplaced[0])
        g.unplaced.remove(web)
        g.front.append(web)
    # the web service (front's first) is the one that publishes the port nginx proxies to
    g.front.sort(key=lambda n: ("ports" not in compose.services[n], FRONT.index(n.lower()) if n.lower() in FRONT
                                else len(FRONT)))
    return g


def container_port(ports: str) -> str:
    """The container port of a service's first `ports:` entry ("8000" of "- 8000:8000/tcp"), else "8000"."""
    entries = re.findall(r"[\w.${}:\-]+", ports.replace("- ", " "))
    for entry in entries:
        port = entry.rsplit(":", 1)[-1].split("/")[0]
        if port.isdigit():
            return port
    return "8000"


def app_services(compose: ComposeFile, g: Guess) -> list[str]:
    """The services that run the app's own image (built here, or the web's image): those that need
    a tag per colour and the secrets."""
    services = compose.services
    colour = [n for n in [*g.front, *g.background] if n in services]
    built = {image_name(services[n].get("image", "")) for n in colour if "build" in services[n]} - {""}
    if not built and g.front:  # nothing is built here: the app's image is the web service's
        built.add(image_name(services[g.front[0]].get("image", "")))
    return [n for n in colour if "build" in services[n] or image_name(services[n].get("image", "")) in built - {""}]


def compose_changes(compose: ComposeFile, g: Guess, app: str, blue_port: int = 18001) -> list[str]:
    """The changes for blue-green (README, "The compose file") that this compose file still lacks."""
    services, changes = compose.services, []
    web = g.front[0] if g.front else ""
    if web and "DEPLOY_PORT" not in services[web].get("ports", ""):
        port = container_port(services[web].get("ports", "") or services[web].get("expose", ""))
        changes.append(f'{web}: ports: ["127.0.0.1:${{DEPLOY_PORT:-{blue_port}}}:{port}"]   (each colour its own '
                       "host port, on 127.0.0.1 only: nginx proxies to it)")
    mine = app_services(compose, g)
    untagged = [n for n in mine if "image" in services[n] and "DEPLOY_COLOR" not in services[n]["image"]]
    if untagged:
        name = image_name(services[untagged[0]]["image"]) or app
        changes.append(f"{', '.join(untagged)}: image: {name}:${{DEPLOY_COLOR:-blue}}   (a tag per colour: "
                       "building green never touches blue's image)")
    secrets = [n for n in mine if "DEPLOY_ENV_FILE" not in services[n].get("env_file", "")]
    if secrets:
        changes.append(f'{", ".join(secrets)}: env_file: ["${{DEPLOY_ENV_FILE:-/dev/null}}"]   (each colour\'s '
                       "secrets, from [defaults.secrets])")
    no_init = [n for n in g.background if n in services and services[n].get("init", "").strip() != "true"]
    if no_init:
        changes.append(f"{', '.join(no_init)}: init: true   (SIGTERM reaches the worker: a graceful stop)")
    return changes


def _names(names: list[str]) -> str:
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


def app_name(folder: str) -> str:
    """A compose project name from the folder's name: lowercase letters, digits, '_' and '-'."""
    name = re.sub(r"[^a-z0-9_-]+", "-", folder.lower()).strip("-_")
    return name if re.match(r"^[a-z0-9]", name) else "app"


def _line(code: str, comment: str) -> str:
    """A line of the file: its code, then its comment in the column the reference file uses."""
    return f"{code:<34} # {comment}" if comment else code


def hosts_toml(app: str, compose_file: str, g: Guess, builds: bool, unplaced: list[str],
               uploaded: bool = False) -> str:
    """The hosts.toml init writes: short, commented, what a new user edits. `uploaded`: the compose
    file is in the folder init runs in, so each deploy brings it from there (`upload`)."""
    pad = " " * 35
    lines = [
        "# fab-bluegreen hosts file, written by init. Every key left out has its built-in default: the",
        "# README's \"hosts.toml\" section (and the commented hosts.toml of fab-bluegreen's own repository)",
        "# names them all. A host's own table overrides any key of [defaults].",
        "",
        "[defaults]",
        _line(f'app = "{app}"', f"compose projects {app}-blue, {app}-green (and {app}-shared)"),
        _line(f'dir = "~/{app}"', "the app's folder on the host (fab setup makes it); ~ is the SSH user's"),
        f"{pad}# home; relative volumes and build contexts resolve here",
        _line(f'compose_file = "{compose_file}"', "relative to dir"),
        *([_line(f'upload = ["{compose_file}"]', "copied from this folder into each colour's own folder on the"),
           f"{pad}# host at every deploy: a rollback runs the old colour's own copy"] if uploaded else []),
        _line(f"front = {_names(g.front)}", "started first in the new colour; the first one is the web service"),
        _line(f"background = {_names(g.background)}", "stopped first in the live colour (workers, beat), started last"),
        _line(f"shared = {_names(g.shared)}", f"run once for both colours ({app}-shared): databases, a broker;"),
        f"{pad}# never stopped or recreated by a deploy",
        *([f"{pad}# not placed (put each in one list): {', '.join(unplaced)}"] if unplaced else []),
        *([_line('prepare = ["{compose} build -q"]', "run in dir before anything stops: builds the new colour"),
           _line('# prepare = ["git pull --ff-only", "docker compose build -q"]', "with a clone of your repo in dir")]
          if builds else
          [_line('# prepare = ["docker compose pull"]', "run in dir before anything stops: fetch the new images")]),
        "",
        _line("[defaults.ports]", "the web service's port on the host, per colour: the compose file"),
        _line("blue = 18001", 'publishes it as ports: ["127.0.0.1:${DEPLOY_PORT:-18001}:8000"]'),
        "green = 18002",
        "",
        _line("[defaults.health]", "the new colour must answer 2xx/3xx here (on its own port, on the"),
        _line('path = "/health/"', "host) before any traffic moves: a cheap URL of your web service"),
        "",
        _line("[defaults.secrets]", "the app's secrets stay on this machine; each colour gets its own copy"),
        _line('# env_file = "secrets/prod.env"', "on the host (0600), named by DEPLOY_ENV_FILE in the compose file"),
        _line(f'# command = "pass show {app}/prod"', "or a command that prints dotenv text"),
        "",
        f"# One table per host: rename {HOST} (fab deploy --host {HOST}) and fill in ssh: an alias of",
        f"# ~/.ssh/config, or [user@]host[:port]. Then: fab setup --host {HOST} (nginx and dir on the host).",
        f"[hosts.{HOST}]",
        _line('ssh = ""', 'FILL IN, e.g. "pi5" or "deploy@192.168.1.50"'),
        "",
        "# [groups]",
        _line(f'# edge = ["{HOST}"]', "fab deploy --group edge"),
    ]
    return "\n".join(lines) + "\n"
