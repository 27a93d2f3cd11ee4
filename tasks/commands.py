"""Every remote command line is born here: pure functions, no I/O.

Each function returns the exact shell line the host runs, so a plan can be printed and
unit-tested without SSH. Values from hosts.toml are quoted with shlex.quote, or were
validated by tasks/settings.py (colours, ports, service names). `~` in `dir` is the SSH user's
home: it is expanded by the remote shell through "$HOME", never by quoting tricks.
"""

from __future__ import annotations

import math
import shlex
from shlex import quote

from .settings import HostSettings

STATE_DIR = ".fab-bluegreen"  # under dir: the record and history every deployer of the app shares
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
MARK = "@@fbg:"  # section markers in the output of facts()


def remote_path(path: str) -> str:
    """A path for the remote shell: quoted, with a leading ~ meaning the SSH user's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + quote(path[2:])
    return quote(path)


SHARED = "shared"  # the pseudo-colour of the services that belong to neither colour


def project(s: HostSettings, color: str) -> str:
    """<app>-blue, <app>-green, or <app>-shared for the shared services."""
    return f"{s.app}-{color}"


def in_dir(s: HostSettings, line: str) -> str:
    return f"cd {remote_path(s.dir)} && {line}"


def color_env(s: HostSettings, color: str) -> str:
    """DEPLOY_COLOR/DEPLOY_PORT, so one compose file serves both colours."""
    return f"DEPLOY_COLOR={color} DEPLOY_PORT={s.port(color)}"


def compose(s: HostSettings, color: str, *args: str) -> str:
    """`docker compose -p <app>-<color> -f <file> ARGS`, run in dir with the colour's environment
    (DEPLOY_COLOR=shared and no port for the shared project: the same every deploy)."""
    base = shlex.join(shlex.split(s.compose))
    argv = ["-p", project(s, color), "-f", s.compose_file, *args]
    env = f"DEPLOY_COLOR={SHARED}" if color == SHARED else color_env(s, color)
    return in_dir(s, f"{env} {base} {shlex.join(argv)}")


# --- compose verbs -----------------------------------------------------------------------

def stop(s: HostSettings, color: str, services: tuple[str, ...] = ()) -> str:
    """Stop (not remove), giving each service stop_timeout seconds to finish gracefully."""
    return compose(s, color, "stop", "-t", str(math.ceil(s.stop_timeout)), *services)


def up(s: HostSettings, color: str, services: tuple[str, ...]) -> str:
    """Recreate exactly these services (no dependencies pulled in: beat must not start early)."""
    return compose(s, color, "up", "-d", "--force-recreate", "--no-deps", *services)


def start(s: HostSettings, color: str, services: tuple[str, ...]) -> str:
    """Start stopped containers as they were: the fast way back in a rollback."""
    return compose(s, color, "start", *services)


def up_shared(s: HostSettings) -> str:
    """Start the shared services if they are not running; never recreate them (that would stop
    the broker both colours use): a changed shared service is the user's own `up`."""
    return compose(s, SHARED, "up", "-d", "--no-recreate", "--no-deps", *s.shared)


def stop_reporting(s: HostSettings, color: str, services: tuple[str, ...]) -> str:
    """stop(), then every container's state and exit code (the facts' `containers` section: 137 is
    a service killed at the end of its grace period), keeping the stop's exit status."""
    return f"{stop(s, color, services)}; rc=$?; echo {MARK}containers; {containers()}; exit $rc"


def down(s: HostSettings, color: str) -> str:
    """Remove a colour's containers and networks. Never -v: volumes stay."""
    return compose(s, color, "down", "--remove-orphans", "-t", str(math.ceil(s.stop_timeout)))


def logs(s: HostSettings, color: str, service: str, lines: int = 20) -> str:
    return compose(s, color, "logs", "--no-color", "--tail", str(lines), service)


def prepare(s: HostSettings, color: str, command: str) -> str:
    """A user's prepare command, run in dir with the new colour's environment."""
    return in_dir(s, f"export {color_env(s, color)} && {command}")


# --- facts: one round trip reads everything the sequence decides on ------------------------

def containers() -> str:
    """One line per compose container: project service state restarts image id exit_code."""
    fmt = (f'{{{{index .Config.Labels "{LABEL_PROJECT}"}}}} {{{{index .Config.Labels "{LABEL_SERVICE}"}}}} '
           "{{.State.Status}} {{.RestartCount}} {{.Image}} {{.Id}} {{.State.ExitCode}}")
    return (f"ids=$(docker ps -aq --filter label={LABEL_PROJECT}) || exit 3; "
            f'[ -z "$ids" ] || docker inspect -f {quote(fmt)} $ids')


def record_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.json"


def history_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.history.jsonl"


def read_root_file(path: str, unreadable: str) -> str:
    """Print a file the SSH user may not be allowed to read (root-only, mode 0600) through
    `sudo -n`; print the line `unreadable` when it exists but cannot be read, nothing when it
    does not exist."""
    p = quote(path)
    return (f"if [ -r {p} ]; then cat {p}; echo; elif sudo -n cat {p} 2>/dev/null; then echo; "
            f"elif sudo -n test -e {p} 2>/dev/null || [ -e {p} ]; then echo {quote(unreadable)}; fi")


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


# --- health and settle -------------------------------------------------------------------

def http_code(url: str, timeout: float) -> str:
    """curl printing only the HTTP status code of url (000: no answer within timeout seconds)."""
    return f"curl -s -o /dev/null -w '%{{http_code}}' --max-time {timeout:g} {quote(url)}"


def health_url(s: HostSettings, color: str) -> str:
    return f"http://127.0.0.1:{s.port(color)}{s.health.path}"


def wait_healthy(s: HostSettings, color: str) -> str:
    """Poll until 2xx/3xx or retries run out; prints `try N CODE` per try (000: no answer)."""
    h = s.health
    curl = http_code(health_url(s, color), h.timeout)
    loop = (f"i=0; while :; do i=$((i+1)); code=$({curl}); echo \"try $i $code\"; "
            f"case $code in 2??|3??) exit 0;; esac; [ $i -ge {h.retries} ] && exit 1; sleep {h.interval:g}; done")
    return f"sleep {h.start_delay:g}; {loop}" if h.start_delay else loop


def wait_settled(s: HostSettings, color: str, services: tuple[str, ...]) -> str:
    """Fail as soon as one of the services is not running or has restarted, within settle seconds."""
    proj = project(s, color)
    want = " ".join(services)
    check = (f"{containers()} | awk -v p={quote(proj)} -v want={quote(want)} "
             "'BEGIN{n=split(want,w,\" \"); for(i=1;i<=n;i++) seen[w[i]]=0} "
             "$1==p && ($2 in seen) {seen[$2]=1; if ($3!=\"running\" || $4!=\"0\") "
             "{print $2\" \"$3\" (exit code \"$7\", restarts \"$4\")\"; bad=1}} "
             "END{for (x in seen) if (!seen[x]) {print x\" has no container\"; bad=1}; exit bad}'")
    end = f"end=$(( $(date +%s) + {math.ceil(s.settle)} ))"
    return f"{end}; while :; do {check} || exit 1; [ $(date +%s) -ge $end ] && exit 0; sleep 0.5; done"


# --- a colour's own broker: the tasks waiting in it ------------------------------------------

UNACKED = "unacked"  # kombu's redis transport: delivered to a worker, not acknowledged yet


def count_queued(s: HostSettings, color: str) -> str:
    """`redis-cli` inside the colour's broker container (one `docker exec` for all the counts: each
    exec costs a starved host CPU): one `queue count` line per queue, and `unacked count`;
    `no-broker` when the colour has no broker container, `broker-down STATE` when it does not run."""
    find = (f"docker ps -a --filter label={LABEL_PROJECT}={quote(project(s, color))} "
            f"--filter label={LABEL_SERVICE}={quote(s.broker_service or '')} --format '{{{{.ID}}}} {{{{.State}}}}'")
    names = [*s.broker.queues, UNACKED]
    asks = " ".join(quote(f"LLEN {q}") for q in s.broker.queues) + f" 'HLEN {UNACKED}'"
    counts = (f"printf '%s\\n' {asks} | docker exec -i \"$cid\" redis-cli -n {int(s.broker.db)} 2>&1 | "
              f"awk -v names={quote(' '.join(names))} 'BEGIN {{split(names, n, \" \")}} {{print n[NR], $0}}'")
    return (f"x=$({find} | head -n 1); cid=${{x%% *}}; st=${{x#* }}; if [ -z \"$x\" ]; then echo no-broker; "
            f"elif [ \"$st\" != running ]; then echo broker-down $st; else {counts}; fi")


def wait_drained(s: HostSettings, color: str, timeout: float, stale_unacked: int = 0) -> str:
    """Poll the colour's broker every second until its queues are empty and no worker holds a
    message it reserved ahead (unacked, beyond the `stale_unacked` a killed worker left before the
    drain), twice in a row; or give up after timeout (exit 1). Prints `left N` while waiting."""
    total = (f"n=$({count_queued(s, color)} | awk -v stale={int(stale_unacked)} '$2 !~ /^[0-9]+$/ {{bad=1}} "
             f"$1 == \"{UNACKED}\" {{$2 -= stale}} $2 > 0 {{n += $2}} END {{if (bad) exit 3; print n + 0}}') || exit 3")
    return (f"end=$(( $(date +%s) + {math.ceil(timeout)} )); empty=0; while :; do {total}; "
            f"if [ $n -eq 0 ]; then empty=$((empty + 1)); [ $empty -ge 2 ] && exit 0; else empty=0; "
            f"echo left $n; fi; [ $(date +%s) -ge $end ] && exit 1; sleep 1; done")


# --- the switch --------------------------------------------------------------------------

def upstream_text(s: HostSettings, port: int) -> str:
    return f"upstream {s.switch.upstream_name} {{ server 127.0.0.1:{port}; }}\n"


_ATOMIC_WRITE = (
    'f=$1; t=$(mktemp "$f.fbg-XXXXXX") || exit 1; '
    'if printf "%s" "$2" > "$t" && { if [ -e "$f" ]; then chown --reference="$f" "$t" && '
    'chmod --reference="$f" "$t"; else chmod 0644 "$t"; fi; } && mv -f "$t" "$f"; '
    'then exit 0; else rm -f "$t"; exit 1; fi'
)


def write_root_file(path: str, content: str) -> str:
    """Atomic write through sudo: a temporary file beside it, same owner and mode, then a rename."""
    return f"sudo -n sh -c {quote(_ATOMIC_WRITE)} sh {quote(path)} {quote(content)}"


WHY = MARK + "why "  # a reason line of the tool's own, printed by a command that fails
LAST_LINE = '"$(echo "$out" | grep -v ^$ | tail -n 1)"'  # the last non-empty line of $out


def why(text: str, *args: str) -> str:
    """Print a reason line in the tool's own words: printf's format (quoted here) with shell
    expressions as its arguments (e.g. '"$codes"'); Result.why() prefers it to the last line."""
    return f"printf {quote(WHY + text + chr(92) + 'n')} {' '.join(args)}".rstrip()


def nginx_workers(s: HostSettings) -> str:
    """Defines `fbg_workers`: prints the PIDs of the nginx master's workers that take connections
    (not those `shutting down` after a reload), sorted, on one line; fails when no master runs.
    The master is found through switch.pid_file (read through sudo when root-only)."""
    pid = quote(s.switch.pid_file)
    return ("fbg_workers() { m=$(cat " + pid + " 2>/dev/null || sudo -n cat " + pid + " 2>/dev/null); "
            'case "$m" in ""|*[!0-9]*) return 1;; esac; [ -d "/proc/$m" ] || return 1; w=; '
            "for p in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v m=\"$m\" "
            "'{pid = $1; sub(/^.*\\) /, \"\"); if ($2 == m) print pid}' | sort -n); do "
            "case \"$(tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline)\" in *'shutting down'*) ;; "
            "*'worker process'*) w=\"$w $p\";; esac; done; echo ${w# }; }")


def reload_applied(s: HostSettings) -> str:
    """Reload nginx (the user's command), then wait until nginx serves the new configuration:
    new workers run under the master and none of the workers from before takes connections.
    A reload only signals the master and returns at once; until then old workers answer."""
    t = s.switch.reload_timeout
    pid_file = s.switch.pid_file
    return (
        f"before=$(fbg_workers) || {{ {why('no nginx master process found through %s: is nginx running? (set switch.pid_file to its pid file)', quote(pid_file))}; exit 5; }}; "
        f"if ! out=$({reload(s)} 2>&1); then "
        f"{why('the nginx reload command failed: %s', LAST_LINE)}; exit 4; fi; "
        f"limit=$(( $(date +%s) + {math.ceil(t)} )); while :; do now=$(fbg_workers); fresh=1; "
        'for p in $now; do case " $before " in *" $p "*) fresh=0;; esac; done; '
        '[ -n "$now" ] && [ $fresh = 1 ] && break; '
        f"if [ $(date +%s) -ge $limit ]; then {why(f'nginx did not take up the new upstream within {t:g} s of the reload (its workers did not change; check switch.reload and switch.pid_file)')}; exit 8; fi; "
        "sleep 0.1; done"
    )


def switch_nginx(s: HostSettings, text: str, previous: str | None, unless_workers: str | None = None) -> str:
    """Point nginx at an upstream in one round trip: write the file atomically, `nginx -t` (on
    failure put the previous file back), reload, and wait until nginx serves it.

    unless_workers: nginx's workers when this run began (switching back): if they still run,
    nginx never took up the new file, so writing the old one back is enough (no reload)."""
    file = s.switch.upstream_file
    f = quote(file)
    back = write_root_file(file, previous) if previous is not None else f"sudo -n rm -f {f}"
    reload_step = reload_applied(s)
    if unless_workers is not None:
        reload_step = (f'if [ "$(fbg_workers)" = {quote(unless_workers)} ]; then '
                       f"echo nginx never took up the new upstream: no reload needed; else {reload_step}; fi")
    return (f"{nginx_workers(s)}; "
            f"{write_root_file(file, text)} || {{ {why('could not write %s through sudo -n', f)}; exit 2; }}; "
            f"if ! out=$({nginx_test()} 2>&1); then {back}; "
            f"{why('nginx -t rejects the new upstream: %s', LAST_LINE)}; exit 3; fi; "
            f"{reload_step}")


def nginx_test() -> str:
    return "sudo -n nginx -t"


def reload(s: HostSettings) -> str:
    return s.switch.reload  # the user's own command, as written in hosts.toml: shell by design


def verify_url(s: HostSettings) -> str:
    return s.switch.verify_url or f"http://127.0.0.1{s.health.path}"


VERIFY_TRIES = 5  # through nginx once it serves the new upstream: 0.5 s apart
CODES = '"$codes"'


def verify(s: HostSettings) -> str:
    """Request verify_url through nginx a few times, until 2xx/3xx; say which codes it gave."""
    url = verify_url(s)
    return (f"i=0; codes=; while :; do i=$((i+1)); code=$({http_code(url, s.health.timeout)}); "
            'codes="$codes $code"; case $code in 2??|3??) break;; esac; '
            f"if [ $i -ge {VERIFY_TRIES} ]; then "
            f"{why('%s did not answer 2xx/3xx through nginx after the switch (HTTP codes:%s; 000: no answer)', quote(url), CODES)}; "
            "exit 7; fi; sleep 0.5; done")


def switch_command(s: HostSettings, color: str) -> str:
    """mode = "command": the user's command with {color} and {port} filled in (validated values)."""
    return s.switch.command.format(color=color, port=s.port(color))


# --- processes that outlive the SSH session: the guard, the warm-up lift, the sampler ----------

# fbg_detach PIDFILE LOG SCRIPT: start SCRIPT (sh) so that it survives the end of the SSH session.
# Where logind ends a user's processes at logout (KillUserProcesses=yes and no linger), setsid is
# not enough: the script then runs in a scope of its own through `sudo -n systemd-run`. SCRIPT
# writes "$$ TAG" to PIDFILE first (see detached()); fbg_detach waits for that line.
DETACH_FUNCTIONS = (
    "fbg_logout_kills() { "
    "v=$(busctl get-property org.freedesktop.login1 /org/freedesktop/login1 "
    "org.freedesktop.login1.Manager KillUserProcesses 2>/dev/null) || return 1; [ \"$v\" = 'b true' ] || return 1; "
    "[ \"$(loginctl show-user \"$(id -un)\" -p Linger --value 2>/dev/null)\" != yes ]; }; "
    "fbg_detach() { rm -f \"$1\"; if fbg_logout_kills; then "
    "sudo -n systemd-run --quiet --scope --uid=\"$(id -u)\" --gid=\"$(id -g)\" env HOME=\"$HOME\" "
    "setsid nohup sh -c \"$3\" "
    "> \"$2\" 2>&1 < /dev/null & j=; else setsid nohup sh -c \"$3\" > \"$2\" 2>&1 < /dev/null & j=$!; fi; "
    # it started once its pid file is written, or once it ended well (a lift of 0 s removes its file;
    # only a child of this shell can be asked that: not sudo's, which runs as root)
    "n=0; while [ ! -s \"$1\" ] && [ $n -lt 100 ]; do [ -z \"$j\" ] || kill -0 $j 2>/dev/null || break; "
    "sleep 0.05; n=$((n+1)); done; [ -s \"$1\" ] || { [ -n \"$j\" ] && ! kill -0 $j 2>/dev/null && wait $j; }; }"
)


def detached(script: str, tag: str, pid_file: str, log: str = "/dev/null") -> str:
    """Run `script` detached (fbg_detach must be defined: DETACH_FUNCTIONS), in the current folder.
    Its pid file holds "PID TAG", and TAG is part of its command line: kill_detached() checks both."""
    body = f"echo \"$$ \"{quote(tag)} > {quote(pid_file)}; {script}"
    return f"fbg_detach {quote(pid_file)} {quote(log)} {quote(body)}"


def kill_detached(pid_file: str, tag: str) -> str:
    """Stop a detached process (its whole process group) and remove its pid file, only if the PID
    still belongs to it (its command line carries the tag): a stale file never kills a stranger."""
    f, t = quote(pid_file), quote(tag)
    return (f"if read p t 2>/dev/null < {f} && [ \"$t\" = {t} ] && "
            f"tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline | grep -qF -- {t}; then "
            f"kill -- -$p 2>/dev/null || kill $p 2>/dev/null; fi; rm -f {f}")


def detach_check() -> str:
    """A pre-flight line: can the guard outlive the SSH session on this host?"""
    return ("if fbg_logout_kills; then if sudo -n systemd-run --version >/dev/null 2>&1; then say ok detach "
            "'logind ends your processes at logout: the guard, the warm-up lift and the sampler run through "
            "sudo systemd-run'; else say fail detach \"logind ends your processes at logout "
            "(KillUserProcesses=yes) and sudo -n systemd-run is not allowed: the guard would die with the SSH "
            "session; run: sudo loginctl enable-linger $(id -un)\"; fi; else say ok detach "
            "'setsid: processes outlive the SSH session'; fi")


# --- the record and history, under dir -----------------------------------------------------

def private(line: str) -> str:
    """Run line in a subshell whose new files are the SSH user's alone (umask 077: folders 0700,
    files 0600): the state files may hold what a deploy ran and why it failed. The umask stays in
    the subshell: the commands that ride along (compose, the user's hooks) keep the host's own."""
    return f"(umask 077 && {line})"


def state_dir() -> str:
    """Make dir/.fab-bluegreen (0700) if it is missing; false if a symbolic link stands in its place
    (nothing is written through it). The lock step also tightens the modes of what is there."""
    return f"[ ! -L {STATE_DIR} ] && {private(f'mkdir -p {STATE_DIR}')}"


def write_record(s: HostSettings, text: str) -> str:
    """Through a fresh temporary file beside it (mktemp: mode 0600, never an existing file or a
    symbolic link someone left there), then a rename."""
    path, tmp = quote(record_path(s)), quote(record_path(s) + ".XXXXXX")
    return in_dir(s, f"{state_dir()} && fbg_tmp=$(mktemp {tmp}) && {{ printf '%s\\n' {quote(text)} > \"$fbg_tmp\" "
                     f"&& mv -f \"$fbg_tmp\" {path} || {{ rm -f \"$fbg_tmp\"; false; }}; }}")


def append_history(s: HostSettings, line: str) -> str:
    """One line at the end of the history (made 0600 if new); never through a symbolic link."""
    path = quote(history_path(s))
    append = private(f"printf '%s\\n' {quote(line)} >> {path}")
    return in_dir(s, f"{state_dir()} && [ ! -L {path} ] && {append}")


# --- the deploy lock, beside the record: mkdir is atomic --------------------------------------

def lock_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.lock"


def lock(s: HostSettings, info: str) -> str:
    """Take the lock, or print who holds it: `acquired`, or `held NOW SINCE` and the holder's info.
    On the way, the state folder and its files become the SSH user's alone (0700 and 0600), as
    earlier versions did not make them."""
    path = quote(lock_path(s))
    linked = why("%s/%s is a symbolic link: fab-bluegreen keeps its state in a folder of its own only",
                 '"$(pwd)"', STATE_DIR)
    write = private(f"printf '%s\\n' {quote(info)} > {path}/info")
    return (f"cd {remote_path(s.dir)} 2>/dev/null || {{ echo no-dir; exit 4; }}; "
            f"[ ! -L {STATE_DIR} ] || {{ {linked}; exit 5; }}; {private(f'mkdir -p {STATE_DIR}')} && "
            f"{{ chmod -R go= {STATE_DIR} 2>/dev/null; true; }} && "
            f"if {private(f'mkdir {path} 2>/dev/null')}; then {write} && echo acquired; "
            f"elif [ -d {path} ]; then echo held $(date +%s) $(stat -c %Y {path}); cat {path}/info 2>/dev/null; exit 3; "
            f"else echo cannot create {path} in \"$(pwd)\"; exit 5; fi")


def unlock(s: HostSettings, token: str) -> str:
    """Free the lock only if it still carries this run's token: never someone else's."""
    path = quote(lock_path(s))
    return in_dir(s, f"if grep -qF {quote(token)} {path}/info 2>/dev/null; then rm -rf {path}; fi")


def look_lock(s: HostSettings) -> str:
    """The lock, if any (`held NOW SINCE` and its info), then the guard of the run that holds it:
    the guard file's token, its deadline (`TOKEN EPOCH`) and what it would do (its plan)."""
    path, g = quote(lock_path(s)), quote(f"{STATE_DIR}/{s.app}.guard")
    return in_dir(s, f"if [ -d {path} ]; then echo held $(date +%s) $(stat -c %Y {path}); "
                     f"head -n 1 {path}/info 2>/dev/null; echo; fi; echo {MARK}guard; cat {g} 2>/dev/null; "
                     f"echo {MARK}until; cat {g}.until 2>/dev/null; echo {MARK}plan; cat {g}.plan 2>/dev/null; true")


def force_unlock(s: HostSettings, token: str, since: str) -> str:
    """Remove the lock that look_lock() showed: only if it still carries that run's token (or, for
    a lock without one, the same age), never one taken since. Prints `removed` or `changed`."""
    path = quote(lock_path(s))
    same = (f"grep -qF {quote(token)} {path}/info 2>/dev/null" if token else
            f"[ \"$(stat -c %Y {path} 2>/dev/null)\" = {quote(since)} ]")
    return in_dir(s, f"if [ ! -d {path} ]; then echo gone; elif {same}; then rm -rf {path} && echo removed; "
                     "else echo changed; fi")


# --- hooks ---------------------------------------------------------------------------------

def hook(s: HostSettings, color: str, previous: str | None, command: str) -> str:
    """A user's hook, in dir, with the colour's environment; {compose} is the colour's compose."""
    base = f"{shlex.join(shlex.split(s.compose))} {shlex.join(['-p', project(s, color), '-f', s.compose_file])}"
    line = command.replace("{compose}", base)
    return in_dir(s, f"export {color_env(s, color)} DEPLOY_PREVIOUS_COLOR={previous or ''} && {line}")


def remove_images(image_ids: list[str]) -> str:
    """Remove images no container uses; docker refuses (without -f) those still in use: kept."""
    ids = " ".join(quote(i) for i in image_ids)
    return f"for i in {ids}; do docker image rm \"$i\" >/dev/null 2>&1 && echo \"removed $i\" || echo \"in use $i\"; done"


# --- status: the facts plus the lock, the last history lines and both colours' health ---------

def status(s: HostSettings) -> str:
    d = remote_path(s.dir)
    lock_dir, hist = f"{d}/{quote(lock_path(s))}", f"{d}/{quote(history_path(s))}"
    health = "; ".join(
        f"echo \"{c} $({http_code(health_url(s, c), s.health.timeout)})\"" for c in ("blue", "green"))
    parts = [
        facts(s),
        f"echo {MARK}lock; [ -d {lock_dir} ] && echo held $(date +%s) $(stat -c %Y {lock_dir}) && "
        f"cat {lock_dir}/info 2>/dev/null",
        f"echo {MARK}guard; grep '\"action\":\"guard\"' {hist} 2>/dev/null | tail -n 1",
        f"echo {MARK}health; {health}",
        f"echo {MARK}lift; for c in blue green; do f={d}/{STATE_DIR}/{quote(s.app)}.$c.lift; [ -f \"$f.sh\" ] || continue; "
        "if read p t 2>/dev/null < \"$f\" && tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline | grep -qF -- \"$t\"; then "
        "echo $c pending; else echo $c stuck; fi; done; true",
    ]
    return "; ".join(parts)


def history(s: HostSettings, lines: int) -> str:
    return f"tail -n {int(lines)} {remote_path(s.dir)}/{quote(history_path(s))} 2>/dev/null; true"


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
    from .cpu import CGROUP  # the host's effective CPUs, for the warm-up cap

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
