"""Reading a host in one round trip each: the facts the sequence decides on, what `fab status` shows,
and the pre-flight check (one line per check: "ok|warn|fail NAME DETAIL"). The facts' output comes in
sections, each printed and read here (tasks/host/facts.py puts them together, and reads the state files
among them); tasks/host/check.py parses the checks."""

from __future__ import annotations

import shlex
from shlex import quote

from ..config.schema import HostSettings
from .base import MARK, in_dir, remote_path
from .cgroup import CGROUP
from .compose import CONTAINERS, SHARED, color_env, compose_command, containers, list_containers, listed, project
from .detach import DETACH_FUNCTIONS, detach_check, still_running
from .health import health_url, http_code
from .nginx import nginx_workers, read_root_file
from . import boot, guard, journal, restart
from .state import STATE_DIR, history_path, lock_path, private, put, record_path


# --- the sections of the facts' output: the line each starts with, and the text split into them ------

RECORD, UPSTREAM, UNREADABLE, NGINX, GIT, COMPOSE, HISTORY = (
    "record", "upstream", "upstream-unreadable", "nginx", "git", "compose", "history")  # and CONTAINERS (compose.py)
LOCK, STALE, UNDO, GUARD, HEALTH, LIFT, RESTART_KEPT, RESTART_NOW, QUEUED = (
    "lock", "stale", "undo", "guard", "health", "lift", "restart-kept", "restart-now", "queued")  # fab status; QUEUED: a deploy's


def section(name: str) -> str:
    """The line a section starts with (printed with `echo`)."""
    return MARK + name


def has(text: str, name: str) -> bool:
    return section(name) in text


def sections(text: str) -> dict[str, list[str]]:
    """The output split into its sections: name -> its lines (what comes before the first is left out)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


# --- facts: one round trip reads everything the sequence decides on ------------------------

def facts(s: HostSettings, reuse_listing: bool = False) -> str:
    """Record, upstream file, git commit of dir, the compose file's presence and all containers
    (reuse_listing: as a command earlier in the round trip listed them, see compose.list_containers)."""
    d = remote_path(s.dir)
    parts = [
        f"echo {section(RECORD)}; cat {d}/{quote(record_path(s))} 2>/dev/null; echo",
        *([f"echo {section(UPSTREAM)}; {read_root_file(s.switch.upstream_file, section(UNREADABLE))}",
           f"{nginx_workers(s)}; echo {section(NGINX)}; fbg_workers"] if s.switch.mode == "nginx" else []),
        f"echo {section(GIT)}; git -C {d} rev-parse --short=12 HEAD 2>/dev/null",
        f"echo {section(COMPOSE)}; test -f {quote(s.compose_file) if s.compose_file.startswith('/') else d + '/' + quote(s.compose_file)} "
        "&& echo yes",
        f"echo {section(HISTORY)}; tail -n 1 {d}/{quote(history_path(s))} 2>/dev/null",
        f"echo {section(CONTAINERS)}; {listed() if reuse_listing else containers()}",
    ]
    return "; ".join(parts)


def upstream(found: dict[str, list[str]]) -> str | None:
    """The upstream file's text; None when it does not exist (or switch.mode is not nginx)."""
    return "\n".join(found[UPSTREAM]).strip() + "\n" if any(found.get(UPSTREAM, [])) else None


def workers(found: dict[str, list[str]]) -> str | None:
    """The PIDs of nginx's workers, e.g. "812 813"; None: not read."""
    return " ".join(" ".join(found[NGINX]).split()) if NGINX in found else None


def git(found: dict[str, list[str]]) -> str:
    return "".join(found.get(GIT, [])).strip()


def compose_file(found: dict[str, list[str]]) -> bool:
    return "yes" in found.get(COMPOSE, [])


def queued(found: dict[str, list[str]]) -> str | None:
    """shell.broker.count_queued()'s output, when it rode along (QUEUED)."""
    return "\n".join(found[QUEUED]) if QUEUED in found else None


# --- status: the facts plus the lock, the last history lines and both colours' health ---------

def status(s: HostSettings) -> str:
    d = remote_path(s.dir)
    lock_dir, hist = f"{d}/{quote(lock_path(s))}", f"{d}/{quote(history_path(s))}"
    health = "; ".join(
        f"echo \"{c} $({http_code(health_url(s, c), s.health.timeout, s.health.host)})\"" for c in ("blue", "green"))
    lift, tag = '"$f"', f'"fbg-lift:{s.app}.$c"'  # each colour's lift (cpu.lift_file, cpu.lift_tag); app is validated
    parts = [
        facts(s),
        f"echo {section(LOCK)}; [ -d {lock_dir} ] && echo held $(date +%s) $(stat -c %Y {lock_dir}) && "
        f"cat {lock_dir}/info 2>/dev/null",
        f"echo {section(STALE)}; [ -d {lock_dir} ] && ( {in_dir(s, guard.staleness(s))} && echo \"$fbg_cause\" ); "
        f"echo {section(UNDO)}; {journal.show(s)}",
        f"echo {section(GUARD)}; grep '\"action\":\"guard\"' {hist} 2>/dev/null | tail -n 1",
        f"echo {section(HEALTH)}; {health}",
        restart_policies(s),
        f"echo {section(LIFT)}; for c in blue green; do f={d}/{STATE_DIR}/{quote(s.app)}.$c.lift; [ -f \"$f.sh\" ] || continue; "
        f"if {still_running(lift, tag)}; then "
        "echo $c pending; else echo $c stuck; fi; done; true",
    ]
    return "; ".join(parts)


def lock(found: dict[str, list[str]]) -> str:
    """`held NOW SINCE` + the holder's info; empty when unlocked."""
    return "\n".join(found.get(LOCK, [])).strip()


def stale(found: dict[str, list[str]]) -> str:
    """Why the lock is stale (guard.staleness: its run's guard is gone), "" when it is not (or unlocked)."""
    return " ".join(found.get(STALE, [])).strip() if lock(found) else ""


def undo(found: dict[str, list[str]]) -> list[str]:
    """The words of the journal's entries (journal.show), newest first: the order they run in."""
    return journal.shown(found.get(UNDO, []))


def health(found: dict[str, list[str]]) -> dict[str, str]:
    """Colour -> HTTP code (000: no answer)."""
    return dict(line.split() for line in found.get(HEALTH, []) if len(line.split()) == 2)


def lifts(found: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(the colours whose warm-up cap is not lifted yet, those of them whose lift process is gone)."""
    pairs = [line.split() for line in found.get(LIFT, []) if len(line.split()) == 2]
    return [c for c, state in pairs if state == "pending"], [c for c, state in pairs if state == "stuck"]


def restart_policies(s: HostSettings) -> str:
    """The restart policies the tool turned off and keeps (restart.path: `<id> <policy>` lines),
    then each of those containers' policy now, in the same form (restart.POLICY)."""
    kept = f"{remote_path(s.dir)}/{quote(restart.path(s))}"
    return (f"echo {section(RESTART_KEPT)}; cat {kept} 2>/dev/null; echo {section(RESTART_NOW)}; "
            f"ids=$(cut -d' ' -f1 {kept} 2>/dev/null); [ -z \"$ids\" ] || docker inspect -f {quote(restart.POLICY)} $ids "
            "2>/dev/null; true")


def policies(found: dict[str, list[str]], name: str) -> dict[str, str]:
    """RESTART_KEPT or RESTART_NOW: container ID -> restart policy."""
    return dict(line.split(" ", 1) for line in found.get(name, []) if " " in line)


# --- fab check: would a staged front (deploy --no-switch) fit beside the live colour? ---------

def front_memory(ids: list[str]) -> str:
    """What these containers (the live front) use now, one `docker stats` line each (MemUsage), then
    the host's MemAvailable in kB after MARK + "available"."""
    listed = " ".join(quote(i) for i in ids)
    return (f"docker stats --no-stream --format '{{{{.MemUsage}}}}' {listed}; echo {MARK}available; "
            "awk '/MemAvailable/ {print $2}' /proc/meminfo")


# --- the pre-flight check: one script, one line per check: "ok|warn|fail NAME DETAIL" --------

def port_check(s: HostSettings, color: str) -> str:
    """A colour's port is free, or held by that colour's own running container (recreated by a
    deploy), as the listing in $fbg_ctrs shows (compose.LISTING_FORMAT: ports in field 8)."""
    port, proj = s.port(color), project(s, color)
    own = (f"printf '%s\\n' \"$fbg_ctrs\" | awk -v p={quote(proj)} -v port={port} "
           "'$1 == p && $3 == \"running\" && index($8, \",\" port \",\") {found = 1} END {exit !found}'")
    return (f"users=$(ss -Hltnp 'sport = :{port}' 2>/dev/null); if [ -z \"$users\" ]; then say ok port_{color} "
            f"'{port} free'; elif {own}; then say ok port_{color} '{port} held by {proj} itself'; "
            f"else say fail port_{color} \"{port} ({color}) is taken by another program: "
            f"$(echo $users | cut -c1-120)\"; fi")


# why `docker version` failed ($v: its output), in so many words: not installed, the SSH user not in the
# docker group (and the socket not writable otherwise), or the daemon not answering
DOCKER_MISSING = (
    "if ! command -v docker >/dev/null 2>&1; then echo \"docker is not installed (install Docker Engine with "
    "its compose plugin)\"; elif ! id -nG | tr ' ' '\\n' | grep -qx docker && [ ! -w /var/run/docker.sock ]; then "
    "echo \"the SSH user $(id -un) is not in the docker group (sudo usermod -aG docker $(id -un), then log in "
    "again)\"; else echo \"$(echo \"$v\" | tail -n 1): is Docker running?\"; fi")

CHECKED_FOR = 600  # seconds a deploy trusts the docker, compose and compose-file checks of an earlier run


def checked_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.checked"


def engine_checks(s: HostSettings, reuse: bool) -> list[str]:
    """Docker, compose and the compose file (`config -q`): on a starved host the costliest checks
    (compose alone starts a large binary each time). A deploy's pass is written down with the compose
    file's checksum (never through a link; `fab check` writes nothing); with `reuse`, a pass younger
    than CHECKED_FOR seconds, of an unchanged compose file
    (and .env, and compose command), while docker answers, stands in for running them again."""
    color = "blue"  # the compose file is checked as blue; both colours share it
    d = remote_path(s.dir)
    base = shlex.join(shlex.split(s.compose))
    seen = f"{d}/{quote(checked_path(s))}"
    checksum = (f"fbg_sum=$({{ cd {d} && cat -- {quote(s.compose_file)} .env; echo {quote(base)}; }} 2>/dev/null "
                "| cksum | cut -d' ' -f1)")
    fresh = (f'[ -n "$fbg_listed" ] && read fbg_t fbg_was fbg_dv fbg_cv 2>/dev/null < {seen} && '
             'case "$fbg_t" in ""|*[!0-9]*) false;; esac && [ "$fbg_was" = "$fbg_sum" ] && fbg_age=$(( $(date +%s) - fbg_t )) && '
             f'[ "$fbg_age" -ge 0 ] && [ "$fbg_age" -lt {CHECKED_FOR} ] && cd {d} 2>/dev/null')
    again = "(checked by a run $fbg_age s ago; fab check checks it now)"
    note = put(checked_path(s), "printf '%s\\n' \"$(date +%s) $fbg_sum $fbg_dv $fbg_cv\"")
    run_them = [
        "fbg_ok=0",
        "v=$(docker version --format '{{.Server.Version}}' 2>&1) && fbg_dv=$v && fbg_ok=$((fbg_ok + 1)) && "
        "say ok docker \"engine $v\" || "
        f"say fail docker \"$({DOCKER_MISSING})\"",
        f"v=$({base} version --short 2>&1) && fbg_cv=$v && fbg_ok=$((fbg_ok + 1)) && say ok compose \"$v\" || "
        f"say fail compose {quote(base + ' does not run:')} \"$v\"",
        compose_file_check(s, color),
    ]
    if not reuse:  # fab check: a check changes nothing on the host, not even this note
        return [checksum, *run_them]
    run_them.append(f'if [ "$fbg_ok" = 3 ] && [ -d {STATE_DIR} ] && [ ! -L {STATE_DIR} ]; then '
                    f'{private(note)} >/dev/null 2>&1; fi')
    return [checksum, f"if {fresh}; then say ok docker \"engine $fbg_dv {again}\"; say ok compose \"$fbg_cv {again}\"; "
            f"say ok compose_file {quote(s.compose_file)} \"unchanged {again}\"; else {'; '.join(run_them)}; fi"]


def compose_file_check(s: HostSettings, color: str) -> str:
    """`config -q` of the compose file in dir; with upload, none there is needed: each deploy checks
    the copy it uploads (and `fab check` the local file: check_upload)."""
    d = remote_path(s.dir)
    if s.upload:
        return (f"if cd {d} 2>/dev/null; then fbg_ok=$((fbg_ok + 1)); say ok compose_file "
                f"{quote('uploaded by each deploy into the colour' + chr(39) + 's own folder')}; "
                f"else say warn dir {quote(s.dir + ' does not exist yet: a deploy makes it')}; fi")
    return (f"if cd {d} 2>/dev/null; then out=$({color_env(s, color)} {compose_command(s, color)} config -q 2>&1) && "
            f"fbg_ok=$((fbg_ok + 1)) && say ok compose_file {quote(s.compose_file)} || "
            f"say fail compose_file \"$(echo \"$out\" | tail -n 1)\"; else say fail dir {quote(s.dir)} does not exist; fi")


def check_upload(s: HostSettings) -> str:
    """`fab check` with upload: `config -q` of the local compose file's text, on this command's
    standard input, as the blue colour in dir (in the home folder while dir does not exist)."""
    color = "blue"
    base = shlex.join(shlex.split(s.compose))
    return (f"{{ cd {remote_path(s.dir)} 2>/dev/null || cd; }} && {color_env(s, color)} {base} -p {quote(project(s, color))} "
            "--project-directory . -f - config -q")


def preflight(s: HostSettings, reuse: bool = False, boot_putback: bool = False) -> str:
    """The checks, one line each; reuse: as engine_checks() (a deploy; `fab check` runs them all);
    boot_putback: also whether the put-back at boot is registered (fab check, fab setup: boot.check)."""
    d = remote_path(s.dir)
    keep = " ".join(quote(project(s, c)) for c in ("blue", "green", SHARED))

    checks = [
        'say() { echo "$@"; }',
        list_containers(),
        CGROUP.strip(),
        'say info cpus "$CPUS"',
        DETACH_FUNCTIONS,
        detach_check(),
        "say ok ssh \"$(id -un)@$(hostname)\"",
        "if sudo -n true 2>/dev/null; then say ok sudo passwordless; "
        "else say fail sudo \"sudo -n asks for a password: allow the SSH user passwordless sudo (NOPASSWD)\"; fi"
        if s.switch.mode == "nginx" else "say ok sudo 'not needed (switch.mode is not nginx)'",
        *engine_checks(s, reuse),
        *([boot.check(s)] if boot_putback else []),
    ]
    if s.switch.mode == "nginx":
        f = quote(s.switch.upstream_file)
        example = f"upstream {s.switch.upstream_name} {{ server 127.0.0.1:{s.port('blue')}; }}"
        checks += [
            f"if sudo -n cat {f} >/dev/null 2>&1; then say ok upstream_file {f}; "
            f"elif sudo -n test -e {f} 2>/dev/null || [ -e {f} ]; then say fail upstream_file {f} cannot be read "
            f"through sudo -n; else say fail upstream_file {f} does not exist: create it with {quote(example)} "
            "and include it in nginx, or run fab setup; fi",
            nginx_workers(s),
            f"w=$(fbg_workers) && say ok nginx_master \"workers $w\" || say fail nginx_master no nginx master "
            f"process found through {quote(s.switch.pid_file)}: is nginx running? set switch.pid_file to its pid file",
            "out=$(sudo -n nginx -t 2>&1) && say ok nginx 'nginx -t passes' || "
            "say fail nginx \"$(echo \"$out\" | grep -v '^$' | tail -n 1)\"",
        ]
    checks += [port_check(s, c) for c in ("blue", "green")]
    if s.build.local:  # room for the images shipped there (tasks/build.py compares)
        checks.append(f"root=$(docker info -f '{{{{.DockerRootDir}}}}' 2>/dev/null) && "
                      "say info docker_free \"$(df -Pk \"$root\" 2>/dev/null | awk 'NR==2 {print $4}') $root\"")
    checks += [
        f"kb=$(df -Pk {d} 2>/dev/null | awk 'NR==2 {{print $4}}'); [ -n \"$kb\" ] && "
        "{ [ \"$kb\" -ge 524288 ] && say ok disk \"$((kb / 1024)) MiB free\" || "
        "say fail disk \"only $((kb / 1024)) MiB free: a second front needs room for its images and logs\"; }",
        "kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo); if [ \"$kb\" -lt 131072 ]; then "
        "say fail memory \"only $((kb / 1024)) MiB available: a second front may not fit\"; "
        "elif [ \"$kb\" -lt 262144 ]; then say warn memory \"$((kb / 1024)) MiB available\"; "
        "else say ok memory \"$((kb / 1024)) MiB available\"; fi",
        # compose projects started in dir, other than the colours' and the shared one (the listing's
        # field 9 onwards is the working dir: compose.LISTING_FORMAT)
        f"wd=$(cd {d} 2>/dev/null && pwd -P); [ -n \"$wd\" ] && [ -n \"$fbg_listed\" ] && for p in $(printf '%s\\n' "
        "\"$fbg_ctrs\" | FBG_WD=\"$wd\" awk '{w = $0; for (i = 1; i <= 8; i++) sub(/^[^ ]* /, \"\", w); "
        "if (w == ENVIRON[\"FBG_WD\"]) print $1}' | sort -u); do "
        f"case \" {keep} \" in *\" $p \"*) ;; *) say fail leftover \"$p\";; esac; done; true",
    ]
    return "; ".join(checks)
