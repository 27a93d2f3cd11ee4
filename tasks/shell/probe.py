"""Reading a host in one round trip each: the facts the sequence decides on, what `fab status` shows,
and the pre-flight check (one line per check: "ok|warn|fail NAME DETAIL"). tasks/host/facts.py and
tasks/host/check.py parse their output."""

from __future__ import annotations

import shlex
from shlex import quote

from ..config.schema import HostSettings
from .base import MARK, remote_path
from .cgroup import CGROUP
from .compose import LABEL_PROJECT, SHARED, color_env, containers, project
from .detach import DETACH_FUNCTIONS, detach_check, still_running
from .health import health_url, http_code
from .nginx import nginx_workers, read_root_file
from .state import STATE_DIR, history_path, lock_path, record_path


# --- facts: one round trip reads everything the sequence decides on ------------------------

def facts(s: HostSettings) -> str:
    """Record, upstream file, git commit of dir, the compose file's presence and all containers."""
    d = remote_path(s.dir)
    parts = [
        f"echo {MARK}record; cat {d}/{quote(record_path(s))} 2>/dev/null; echo",
        *([f"echo {MARK}upstream; {read_root_file(s.switch.upstream_file, MARK + 'upstream-unreadable')}",
           f"{nginx_workers(s)}; echo {MARK}nginx; fbg_workers"] if s.switch.mode == "nginx" else []),
        f"echo {MARK}git; git -C {d} rev-parse --short=12 HEAD 2>/dev/null",
        f"echo {MARK}compose; test -f {quote(s.compose_file) if s.compose_file.startswith('/') else d + '/' + quote(s.compose_file)} "
        "&& echo yes",
        f"echo {MARK}history; tail -n 1 {d}/{quote(history_path(s))} 2>/dev/null",
        f"echo {MARK}containers; {containers()}",
    ]
    return "; ".join(parts)


# --- status: the facts plus the lock, the last history lines and both colours' health ---------

def status(s: HostSettings) -> str:
    d = remote_path(s.dir)
    lock_dir, hist = f"{d}/{quote(lock_path(s))}", f"{d}/{quote(history_path(s))}"
    health = "; ".join(
        f"echo \"{c} $({http_code(health_url(s, c), s.health.timeout)})\"" for c in ("blue", "green"))
    lift, tag = '"$f"', f'"fbg-lift:{s.app}.$c"'  # each colour's lift (cpu.lift_file, cpu.lift_tag); app is validated
    parts = [
        facts(s),
        f"echo {MARK}lock; [ -d {lock_dir} ] && echo held $(date +%s) $(stat -c %Y {lock_dir}) && "
        f"cat {lock_dir}/info 2>/dev/null",
        f"echo {MARK}guard; grep '\"action\":\"guard\"' {hist} 2>/dev/null | tail -n 1",
        f"echo {MARK}health; {health}",
        f"echo {MARK}lift; for c in blue green; do f={d}/{STATE_DIR}/{quote(s.app)}.$c.lift; [ -f \"$f.sh\" ] || continue; "
        f"if {still_running(lift, tag)}; then "
        "echo $c pending; else echo $c stuck; fi; done; true",
    ]
    return "; ".join(parts)


# --- the pre-flight check: one script, one line per check: "ok|warn|fail NAME DETAIL" --------

def port_check(s: HostSettings, color: str) -> str:
    """A colour's port is free, or held by that colour's own container (recreated by a deploy)."""
    port, proj = s.port(color), project(s, color)
    return (f"users=$(ss -Hltnp 'sport = :{port}' 2>/dev/null); if [ -z \"$users\" ]; then say ok port_{color} "
            f"'{port} free'; elif docker ps -q --filter label={LABEL_PROJECT}={quote(proj)} --filter publish={port} "
            f"| grep -q .; then say ok port_{color} '{port} held by {proj} itself'; "
            f"else say fail port_{color} \"{port} ({color}) is taken by another program: "
            f"$(echo $users | cut -c1-120)\"; fi")


def preflight(s: HostSettings) -> str:
    color = "blue"  # the compose file is checked as blue; both colours share it
    d = remote_path(s.dir)
    base = shlex.join(shlex.split(s.compose))
    keep = " ".join(quote(project(s, c)) for c in ("blue", "green", SHARED))

    checks = [
        'say() { echo "$@"; }',
        CGROUP.strip(),
        'say info cpus "$CPUS"',
        DETACH_FUNCTIONS,
        detach_check(),
        "say ok ssh \"$(id -un)@$(hostname)\"",
        "if sudo -n true 2>/dev/null; then say ok sudo passwordless; "
        "else say fail sudo \"sudo -n asks for a password: allow the SSH user passwordless sudo (NOPASSWD)\"; fi"
        if s.switch.mode == "nginx" else "say ok sudo 'not needed (switch.mode is not nginx)'",
        "v=$(docker version --format '{{.Server.Version}}' 2>&1) && say ok docker \"engine $v\" || "
        "say fail docker \"$(echo \"$v\" | tail -n 1): is Docker running, and is the SSH user in the docker group?\"",
        f"v=$({base} version --short 2>&1) && say ok compose \"$v\" || say fail compose {quote(base + ' does not run:')} \"$v\"",
        f"if cd {d} 2>/dev/null; then out=$({color_env(s, color)} {base} -p {quote(project(s, color))} "
        f"-f {quote(s.compose_file)} config -q 2>&1) && say ok compose_file {quote(s.compose_file)} || "
        f"say fail compose_file \"$(echo \"$out\" | tail -n 1)\"; else say fail dir {quote(s.dir)} does not exist; fi",
    ]
    if s.switch.mode == "nginx":
        f = quote(s.switch.upstream_file)
        example = f"upstream {s.switch.upstream_name} {{ server 127.0.0.1:{s.port('blue')}; }}"
        checks += [
            f"if sudo -n cat {f} >/dev/null 2>&1; then say ok upstream_file {f}; "
            f"elif sudo -n test -e {f} 2>/dev/null || [ -e {f} ]; then say fail upstream_file {f} cannot be read "
            f"through sudo -n; else say fail upstream_file {f} does not exist: create it with {quote(example)} "
            "and include it in nginx; fi",
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
        f"wd=$(cd {d} 2>/dev/null && pwd -P); [ -n \"$wd\" ] && for p in $(docker ps -a --filter "
        f"label={LABEL_PROJECT}.working_dir=\"$wd\" --format '{{{{.Label \"{LABEL_PROJECT}\"}}}}' | sort -u); do "
        f"case \" {keep} \" in *\" $p \"*) ;; *) say fail leftover \"$p\";; esac; done; true",
    ]
    return "; ".join(checks)
