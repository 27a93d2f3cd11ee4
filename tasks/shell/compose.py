"""docker compose per colour: each colour is its own compose project (`<app>-blue`, `<app>-green`,
and `<app>-shared` for the services of neither), from the one compose file, with DEPLOY_COLOR and
DEPLOY_PORT in its environment; the verbs the sequences use, and the listing of compose containers.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from shlex import quote

from ..config.schema import HostSettings
from . import restart
from .base import LAST_LINE, MARK, Command, in_dir, step, why
from .state import copy_dir, copy_path, env_file, env_path

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_DEPENDS = "com.docker.compose.depends_on"  # e.g. "redis:service_started:false,db:service_healthy:false"
SHARED = "shared"  # the pseudo-colour of the services that belong to neither colour


def project(s: HostSettings, color: str) -> str:
    """<app>-blue, <app>-green, or <app>-shared for the shared services."""
    return f"{s.app}-{color}"


def color_env(s: HostSettings, color: str) -> str:
    """DEPLOY_COLOR/DEPLOY_PORT, so one compose file serves both colours; with secrets configured,
    DEPLOY_ENV_FILE too, the colour's own secrets file (the compose file's `env_file:`)."""
    env = f"DEPLOY_COLOR={color} DEPLOY_PORT={s.port(color)}"
    return f"{env} DEPLOY_ENV_FILE={env_file(s, color)}" if s.secrets.configured else env


def compose(s: HostSettings, color: str, *args: str, copy: str | None = None) -> str:
    """`docker compose -p <app>-<color> -f <file> ARGS`, run in dir with the colour's environment
    (DEPLOY_COLOR=shared and no port for the shared project: the same every deploy); the file as
    compose_command() says (copy: whose copy of it, the colour's own by default)."""
    env = f"DEPLOY_COLOR={SHARED}" if color == SHARED else color_env(s, color)
    return in_dir(s, f"{env} {compose_command(s, color, copy)} {shlex.join(args)}".rstrip())


def compose_command(s: HostSettings, color: str, copy: str | None = None) -> str:
    """The one place a compose command line gets its project and its file, for a command run in dir:
    `docker compose -p <app>-<color> -f <compose_file>`. With upload, the file is the colour's own
    copy (tasks/host/deploy.py uploads it) with dir as the project directory, so relative volumes
    and build contexts resolve against dir as before, shared by both colours; a colour deployed
    before upload was set has no copy, and keeps the compose file in dir, which it ran from."""
    base = shlex.join(shlex.split(s.compose))
    if not s.upload:
        return f"{base} {shlex.join(['-p', project(s, color), '-f', s.compose_file])}"
    own = quote(copy_path(s, copy or color, own_name(s)))
    file = f'"$([ -f {own} ] && echo {own} || echo {quote(s.compose_file)})"'
    return f"{base} -p {quote(project(s, color))} --project-directory . -f {file}"


def own_name(s: HostSettings) -> str:
    """The compose file's name in a colour's folder (upload: the files land there by their names)."""
    return s.compose_file.rsplit("/", 1)[-1]


# --- compose verbs -----------------------------------------------------------------------

def stopping(s: HostSettings) -> float:
    """The budget of a command that stops containers: their grace period, then the command's own time."""
    return s.stop_timeout + s.timeouts.command


def stop(s: HostSettings, color: str, services: tuple[str, ...] = ()) -> Command:
    """Stop (not remove), giving each service stop_timeout seconds to finish gracefully; first their
    restart policy off (restart.hold), so that no reboot starts them again (stopped anyway if that fails)."""
    line = compose(s, color, "stop", "-t", str(math.ceil(s.stop_timeout)), *services)
    return Command(f"{restart.hold(s, ids_of(s, color, services))}; {line}", stopping(s))


def up(s: HostSettings, color: str, services: tuple[str, ...]) -> Command:
    """Recreate exactly these services (no dependencies pulled in: beat must not start early)."""
    return step(s, compose(s, color, "up", "-d", "--force-recreate", "--no-deps", *shipped(s), *services))


def create(s: HostSettings, color: str, services: tuple[str, ...]) -> Command:
    """Create (recreate) exactly these services without starting any: one compose call for all of a
    deploy's new containers, which then start by ID phase by phase (start_created, start_ids)."""
    return step(s, compose(s, color, "up", "--no-start", "--force-recreate", "--no-deps", *shipped(s), *services))


# created(): SERVICE ID DEPENDS_ON (compose's own label: "redis:service_started:false,...")
CREATED_FORMAT = f'{{{{.Label "{LABEL_SERVICE}"}}}} {{{{.ID}}}} {{{{.Label "{LABEL_DEPENDS}"}}}}'
WAITS = ":service_(healthy|completed_successfully):"  # a depends_on condition only compose honours


def created(s: HostSettings, color: str) -> str:
    """The colour's containers into $fbg_new, one `created SERVICE ID DEPENDS_ON` line each, printed too,
    oldest first (the order compose created them in: dependencies first): one docker call."""
    ps = (f"docker ps -a --no-trunc --filter label={LABEL_PROJECT}={quote(project(s, color))} "
          f"--format {quote(CREATED_FORMAT)}")
    return (f"fbg_new=$({ps} | awk '{{l[NR] = $0}} END {{for (i = NR; i > 0; i--) print \"created \" l[i]}}') "
            "&& printf '%s\\n' \"$fbg_new\"")


def start_created(s: HostSettings, color: str, services: tuple[str, ...]) -> str:
    """Start these services' containers as created() listed them in $fbg_new: by ID, in that order,
    with the docker CLI (on a starved host a compose call costs several docker calls); through
    `compose start` when one of them waits for another's health or completion, which only compose
    honours."""
    want = quote(" ".join(services))
    pick = (f"printf '%s\\n' \"$fbg_new\" | awk -v want={want} 'BEGIN {{n = split(want, w, \" \"); "
            "for (i = 1; i <= n; i++) ok[w[i]] = 1} ($2 in ok) {seen[$2] = 1; print $3; if ($4 ~ /" + WAITS + "/) "
            "print \"compose\"} END {for (x in ok) if (!(x in seen)) print \"missing\"}'")
    return (f"ids=$({pick}); case \"$ids\" in *missing*) echo no container for every one of {want}; exit 1;; "
            f"*compose*) {compose(s, color, 'start', *services)};; *) docker start $ids >/dev/null;; esac")


def create_then_start(s: HostSettings, color: str, services: tuple[str, ...], first: tuple[str, ...]) -> Command:
    """create() the colour's services, list them (created()), then start `first` (start_created)."""
    return step(s, f"{create(s, color, services)} && {created(s, color)} && {start_created(s, color, first)}")


@dataclass
class Created:
    """What created() printed: (service, container ID) oldest first, and the services whose start
    must go through compose (a depends_on condition of theirs is WAITS)."""
    order: list[tuple[str, str]] = field(default_factory=list)
    waits: set[str] = field(default_factory=set)

    def ids(self, services: tuple[str, ...]) -> list[str]:
        return [cid for service, cid in self.order if service in services]

    def has(self, services: tuple[str, ...]) -> bool:
        return all(any(x == service for x, _ in self.order) for service in services)


def parse_created(stdout: str) -> Created:
    found = Created()
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "created":
            found.order.append((parts[1], parts[2]))
            if len(parts) > 3 and re.search(WAITS, parts[3]):
                found.waits.add(parts[1])
    return found


def start_ids(s: HostSettings, color: str, services: tuple[str, ...], created: Created) -> Command:
    """Start these services' containers as created() listed them, as start_created() does."""
    if created.waits.intersection(services):
        return start(s, color, services)
    return step(s, f"docker start {' '.join(quote(i) for i in created.ids(services))} >/dev/null")


def shipped(s: HostSettings) -> tuple[str, ...]:
    """build.where = "local": the images were built off the host and shipped there, tagged: `up`
    must neither build them again nor pull them (a registry knows nothing of them)."""
    return ("--no-build", "--pull", "never") if s.build.local else ()


def start(s: HostSettings, color: str, services: tuple[str, ...]) -> Command:
    """Start stopped containers as they were: the fast way back in a rollback; with the restart
    policy stop() turned off given back first (restart.give_back: `start` keeps the one they have)."""
    return step(s, f"{restart.give_back(s, ids_of(s, color, services))}; {compose(s, color, 'start', *services)}")


def ids_of(s: HostSettings, color: str, services: tuple[str, ...] = ()) -> str:
    """Shell printing the full IDs of a colour's containers (of these services only, if named)."""
    base = f"docker ps -aq --no-trunc --filter label={LABEL_PROJECT}={quote(project(s, color))}"
    return "; ".join(f"{base} --filter label={LABEL_SERVICE}={quote(x)}" for x in services) or base


def up_shared(s: HostSettings, copy: str | None = None) -> Command:
    """Start the shared services if they are not running; never recreate them (that would stop
    the broker both colours use): a changed shared service is the user's own `up`. With upload,
    from the copy of the colour being deployed (copy)."""
    return step(s, compose(s, SHARED, "up", "-d", "--no-recreate", "--no-deps", *s.shared, copy=copy))


def stop_reporting(s: HostSettings, color: str, services: tuple[str, ...]) -> Command:
    """stop(), then every container's state and exit code (the facts' `containers` section: 137 is
    a service killed at the end of its grace period), keeping the stop's exit status."""
    return Command(f"{stop(s, color, services)}; rc=$?; echo {MARK}{CONTAINERS}; {containers()}; exit $rc", stopping(s))


def stop_ids(s: HostSettings, ids: list[str]) -> Command:
    """Stop these containers (IDs the facts listed) as stop() does, with the docker CLI alone: on a
    starved host a compose call costs several times a docker call. Their restart policy goes off
    first (restart.hold): no reboot starts them again; if that fails, nothing is stopped. Their exit
    codes (137: killed at the end of the grace period) are read by the next listing that includes
    them (exit_codes)."""
    if not ids:
        return Command(f"echo {MARK}{CONTAINERS}", s.timeouts.command)
    listed = " ".join(quote(i) for i in ids)
    return Command(f"{restart.hold(s, restart.listed(ids))} && docker stop -t {math.ceil(s.stop_timeout)} {listed} "
                   ">/dev/null", stopping(s))


def exit_codes(ids: list[str]) -> str:
    """The containers section (CONTAINER_FORMAT) of these containers alone: their state and exit code."""
    listed = " ".join(quote(i) for i in ids)
    return f"echo {MARK}{CONTAINERS}; " + (f"docker inspect -f {quote(CONTAINER_FORMAT)} {listed}" if ids else "true")


def down(s: HostSettings, color: str) -> Command:
    """Remove a colour's containers and networks. Never -v: volumes stay."""
    return Command(compose(s, color, "down", "--remove-orphans", "-t", str(math.ceil(s.stop_timeout))), stopping(s))


def remove(s: HostSettings, color: str) -> Command:
    """down(), then the colour's secrets file and its copy of the uploaded files, once its
    containers are gone (cleanup, and a rollback of a staged colour). Never -v: volumes stay."""
    gone = down(s, color)
    return Command(f"{gone} && rm -f {quote(env_path(s, color))} && rm -rf {quote(copy_dir(s, color))}", gone.budget)


def config_check(s: HostSettings, color: str) -> Command:
    """`config -q` of the colour's compose file, saying why in one line when it fails."""
    return step(s, f"out=$({compose(s, color, 'config', '-q')} 2>&1) || {{ {why('%s', LAST_LINE)}; exit 1; }}")


def logs(s: HostSettings, color: str, service: str, lines: int = 20) -> Command:
    return step(s, compose(s, color, "logs", "--no-color", "--tail", str(lines), service))


# one line per compose container: project service state restarts image id exit_code
CONTAINERS = "containers"  # the section (base.MARK + it) of containers' lines, CONTAINER_FORMAT
CONTAINER_FORMAT = (f'{{{{index .Config.Labels "{LABEL_PROJECT}"}}}} {{{{index .Config.Labels "{LABEL_SERVICE}"}}}} '
                    "{{.State.Status}} {{.RestartCount}} {{.Image}} {{.Id}} {{.State.ExitCode}}")


@dataclass(frozen=True)
class Container:
    """One line of CONTAINER_FORMAT."""

    project: str
    service: str
    state: str  # running, exited, restarting, created, paused, dead
    restarts: int
    image: str  # image ID (sha256:...)
    id: str
    exit_code: int


def container(line: str) -> Container | None:
    """A line of CONTAINER_FORMAT (maybe followed by more: LISTING_FORMAT); None: not one of ours."""
    parts = line.split()
    if len(parts) < 7:
        return None
    proj, service, state, restarts, image, cid, code = parts[:7]
    try:
        return Container(proj, service, state, int(restarts), image, cid, int(code))
    except ValueError:  # a label with a space (no compose project of this tool's has one): not ours
        return None


LABEL_WORKING_DIR = f"{LABEL_PROJECT}.working_dir"
# CONTAINER_FORMAT, then the host ports it publishes while running (",18001,18001," or ",") and the
# folder compose ran in (last: it may hold spaces); the facts' parser reads the first seven fields only
LISTING_FORMAT = (CONTAINER_FORMAT + " ,{{range $p, $c := .NetworkSettings.Ports}}{{range $c}}{{.HostPort}},"
                  f'{{{{end}}}}{{{{end}}}} {{{{index .Config.Labels "{LABEL_WORKING_DIR}"}}}}')


def containers(fmt: str = CONTAINER_FORMAT) -> str:
    """One line per compose container (CONTAINER_FORMAT): two docker calls, whatever their number."""
    return (f"ids=$(docker ps -aq --filter label={LABEL_PROJECT}) || exit 3; "
            f'[ -z "$ids" ] || docker inspect -f {quote(fmt)} $ids')


def list_containers(ids: list[str] | None = None) -> str:
    """Read every compose container once (LISTING_FORMAT) into $fbg_ctrs, for the checks and facts
    of the same round trip; $fbg_listed is 1 when that worked. With `ids` (every container the run
    knows of): those alone, in one docker call (one that is gone is left out)."""
    if ids:
        return (f"fbg_listed=; fbg_ctrs=$(docker inspect -f {quote(LISTING_FORMAT)} "
                f"{' '.join(quote(i) for i in ids)} 2>/dev/null); [ -z \"$fbg_ctrs\" ] || fbg_listed=1")
    return f"fbg_listed=; fbg_ctrs=$({containers(LISTING_FORMAT)}) && fbg_listed=1"


def listed() -> str:
    """The containers as list_containers() read them, else read now (the facts' `containers` lines)."""
    return f"if [ -n \"$fbg_listed\" ]; then printf '%s\\n' \"$fbg_ctrs\"; else {containers()}; fi"


def remove_images(image_ids: list[str]) -> str:
    """Remove images no container uses; docker refuses (without -f) those still in use: kept."""
    ids = " ".join(quote(i) for i in image_ids)
    return f"for i in {ids}; do docker image rm \"$i\" >/dev/null 2>&1 && echo \"removed $i\" || echo \"in use $i\"; done"


def start_unless_running(s: HostSettings, color: str, services: tuple[str, ...], other: str) -> Command:
    """start() of a colour's services, unless any of those services of the `other` colour runs (the
    old background comes back only if the new one does not: never two beats); fails with a why then."""
    fmt = "{{.Label \"" + LABEL_SERVICE + "\"}}"
    running = f"docker ps --filter label={LABEL_PROJECT}={quote(project(s, other))} --format {quote(fmt)}"
    names = " ".join(f"-e {quote(x)}" for x in services)
    runs = why(f"not started: {project(s, other)}'s %s still runs", '"$(echo $fbg_run)"')
    check = (f"fbg_run=$({running}) || {{ {why('could not list the running containers')}; exit 1; }}; "
             f"fbg_run=$(printf '%s\\n' \"$fbg_run\" | grep -xF {names}); [ -z \"$fbg_run\" ] || {{ {runs}; exit 1; }}")
    line = start(s, color, services)
    return Command(f"( {check}; {line} )", line.budget)
