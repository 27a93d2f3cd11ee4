"""A small simulated host for unit tests of the sequences: it plays the commands of tasks/shell/ on
a dict of containers (and the record, the upstream file, the secrets files), keeps an ordered log of
what they did (`events`), and fails the steps a test asks it to.

It refuses what it does not know, as Invoke's MockContext does: a round trip in which no line of
COMMANDS is recognised raises UnknownCommand, naming it, instead of answering `(0, "")`.

What rides along with a command is taken out first: the lowest priority (base.low_priority, in front
of each of the tool's own commands), the guard's arming (with the stop), its
heartbeat (in front of every command while armed), its disarm (with the next command), the undo
journal's entries (journal.append, in front of a step's command: kept in `journal`, as the files
the guard would run), and the `echo @@fbg:started NAME` markers of base.in_order(). COMMANDS plays
what is left, in its order.

To teach it a new command (a builder just added to tasks/shell/), add one line to COMMANDS:

    ("what it is (its builder)", r"a regex that finds it in a round trip", "method"),

- In the regex, {app}, {dir}, {file} and {upstream} stand for this host's app, dir (as
  base.remote_path() writes it), compose file and upstream file, quoted as the builders quote them
  and escaped; {files} for the `-f` part of a compose command (compose.compose_command: with
  upload, --project-directory and the colour's own copy); {env} for the DEPLOY_ENV_FILE=... a colour's environment carries with secrets, and
  {switch} for switch.command (its colour in the group `color`). Make it specific enough that a
  misspelled command does not match it.
- `method` names the FakeHost method that plays one match: method(match) changes the fake state
  (appending to self.events what a test may want to see in order) and returns what the command
  prints: a str, added to the round trip's output, or (exit code, output) to end the round trip
  there. A method named read_* answers the whole round trip, before any failure a test asked for
  (`fail`) is applied. `noop` plays a command whose effect no test looks at.
"""

from __future__ import annotations

import re
import shlex

from tasks.config.schema import HostSettings
from tasks.errors import Unreachable
from tasks.host.remote import RecordingRemote
from tasks.shell.base import MARK, low_priority, remote_path
from tasks.shell import probe
from tasks.shell.probe import section

# The commands the fake host knows, one line each: (what it is, its pattern, the method that plays it).
# Played in this order within a round trip, each on every match (a read_* answers it alone).
COMMANDS: list[tuple[str, str, str]] = [
    ("pre-flight, with the facts (check.run_checks)", r"^say\(\) \{", "read_preflight"),
    ("facts, or fab status (probe.facts, probe.status)", rf"^echo {section(probe.RECORD)}", "read_facts"),
    ("history (state.history)", r"^if \[ -f {dir}/\.fab-bluegreen/{app}\.history\.jsonl \]; then cut=.* "
     r"awk -v cut=", "read_history"),
    ("secrets read (state.read_env)", r"cat \.fab-bluegreen/{app}\.(blue|green)\.env 2>/dev/null; true$", "read_env"),
    ("images inventory (images.inventory)", rf"^echo {MARK}images", "read_images"),
    ("memory of the live front (probe.front_memory)", r"^docker stats --no-stream --format '\{\{\.MemUsage\}\}' ",
     "read_front_memory"),
    ("lock (state.lock)", r"if \(umask 077 && mkdir \.fab-bluegreen/{app}\.lock 2>/dev/null\)", "take_lock"),
    ("unlock (state.unlock)", r"if grep -qF \S+ \.fab-bluegreen/{app}\.lock/info 2>/dev/null; then "
     r"rm -rf \.fab-bluegreen/{app}\.lock; fi", "unlock"),
    ("prepare (hooks.prepare)", r"(?s)export DEPLOY_COLOR=(blue|green) DEPLOY_PORT=\d+{env} && (.*)", "prepare"),
    ("a hook (hooks.hook)", r"(?s)export DEPLOY_COLOR=(blue|green) DEPLOY_PORT=\d+{env} DEPLOY_PREVIOUS_COLOR=\w* && (.*)",
     "hook"),
    ("the sampler's samples (cpu.stop_sampler)", r"cat \.fab-bluegreen/{app}\.samples 2>/dev/null; rm -f ", "noop"),
    ("a pending lift removed (cpu.cancel_lift)", r"rm -f \.fab-bluegreen/{app}\.(blue|green)\.lift\.sh; true", "noop"),
    ("images received (images.load)", r"^(zstd -dcq|gzip -dc) \| docker load", "noop"),
    ("images tagged (images.tag)", r"docker tag \S+ \S+", "noop"),
    ("unused images removed (compose.remove_images)", r"^for i in [^;]*; do docker image rm \"\$i\" ", "noop"),
    ("containers' exit codes (compose.exit_codes, before a start resets them)", rf"echo {section(probe.CONTAINERS)}",
     "containers_after_stop"),
    ("the other colour's background runs? (compose.start_unless_running)", r"fbg_run=\$\(docker ps --filter "
     r"label=com\.docker\.compose\.project={app}-(blue|green) .*?grep -xF ((?:-e \S+ ?)+)\)", "start_unless"),
    ("restart policies off (restart.hold)", r"docker update --restart=no \$fbg_ids", "hold"),
    ("restart policies back (restart.give_back)", r'docker update --restart="\$fbg_policy"', "give_back"),
    ("docker compose (compose.compose)", r"-p {app}-(blue|green|shared) {files} (\w+)([^;&|\n]*)", "compose"),
    ("containers created, listed (compose.created)", r"fbg_new=\$\(docker ps -a --no-trunc --filter "
     r"label=com\.docker\.compose\.project={app}-(blue|green) ", "list_created"),
    ("what was created, started by ID (compose.start_created)", r"ids=\$\(printf '%s\\n' \"\$fbg_new\" \| awk -v "
     r"want=('[^']*'|\S+) ", "start_created"),
    ("started by ID (compose.start_ids)", r"docker start ([^$;>]+)>/dev/null", "start_ids"),
    ("capped start by ID (cpu.start_capped)", r"\nids=('[^'\n]*'|\S+)\n", "start_ids"),
    ("stop by ID (compose.stop_ids)", r"docker stop -t \d+ ([^;>]*)", "stop_ids"),
    ("upstream file (nginx.write_root_file)", r"sh {upstream} ", "write_upstream"),
    ("secrets write (state.write_env)",
     r"cat > \"\$fbg_tmp\" && mv -f \"\$fbg_tmp\" \.fab-bluegreen/{app}\.(blue|green)\.env ", "write_env"),
    ("secrets removed (compose.remove)", r"rm -f \.fab-bluegreen/{app}\.(blue|green)\.env", "remove_env"),
    ("upload: a file of a colour's own copy (state.write_copy)",
     r"mv -f \"\$fbg_tmp\" \.fab-bluegreen/{app}\.(blue|green)/(\S+) ", "write_copy"),
    ("a colour's own copy removed (compose.remove)", r"rm -rf \.fab-bluegreen/{app}\.(blue|green)$", "remove_copy"),
    ("history line (state.append_history)", r"printf '%s\\n' '(?:[^']|'\"'\"')*' >> \.fab-bluegreen/{app}\.history\.jsonl\)",
     "append_history"),
    ("switch.command (nginx.switch_command)", r"{switch}", "switch_command"),
    ("record (state.write_record)", r"printf '%s\\n' ('(?:[^']|'\"'\"')*') > \"\$fbg_tmp\" && "
     r"mv -f \"\$fbg_tmp\" \.fab-bluegreen/{app}\.json ", "write_record"),
    ("health check (health.wait_healthy)", r"(?:^|\( )i=0; while", "health"),
    ("facts riding along (probe.facts)", rf"echo {section(probe.RECORD)}", "facts_riding"),
    ("queues (broker.count_queued)", r"docker exec -i \"\$cid\" redis-cli -n \d+", "count_queued"),
    ("open connections (connections.wait_closed)", r"fbg_open\(\) \{", "wait_closed"),
]


class UnknownCommand(BaseException):
    """A round trip the fake host does not know (see COMMANDS). Not an Exception: the fleet turns a
    host's Exception into that host's `failed` row, which a test could take for what it expects."""


class Patterns:
    """How the commands of one host's settings look (app, dir, compose file, upstream file)."""

    def __init__(self, s: HostSettings):
        d, app = re.escape(remote_path(s.dir)), re.escape(s.app)
        self.app = s.app
        self.low = re.compile(re.escape(low_priority() + "; "))
        self.arm = re.compile(r": arm-guard;.*?could not start the guard on the host\\n'; exit 1; \}; \}\)?", re.S)
        self.disarm = re.compile(rf"\{{ cd {d} && if grep -qF \S+ \.fab-bluegreen/{app}\.guard 2>/dev/null && mv .*?"
                                 r"echo @@fbg:\$fbg_guard; \}", re.S)
        self.note = re.compile(  # a journal entry written (journal.append): its text, its number
            rf"\( cd {d} && \[ -d \.fab-bluegreen/{app}\.lock \] && \(umask 077 && mkdir -p \.fab-bluegreen/{app}\.lock/undo\) && .*? && "
            rf"\{{ printf %s ('(?:[^']|'\"'\"')*') > \"\$fbg_tmp\" && mv -f \"\$fbg_tmp\" "
            rf"\.fab-bluegreen/{app}\.lock/undo/(\d+) \|\| \{{ rm -f \"\$fbg_tmp\"; false; \}}; \}} \)", re.S)
        self.heartbeat = re.compile(
            rf"cd {d} && if grep -qF \S+ \.fab-bluegreen/{app}\.guard 2>/dev/null; then .*? "
            rf"echo \S+ \$\(\( \$\(date \+%s\) \+ \d+ \)\) > \"\$fbg_tmp\" && "
            rf"mv -f \"\$fbg_tmp\" \.fab-bluegreen/{app}\.guard\.until .*? \|\| exit 1; "
            r"else printf '@@fbg:why the guard is no longer armed.*?exit 9; fi; ")
        files = (r'--project-directory \. -f "\$\(\[ -f \S+ \] && echo \S+ \|\| echo \S+\)"' if s.upload
                 else f"-f {re.escape(shlex.quote(s.compose_file))}")  # upload: the colour's own copy
        fill = {"{app}": app, "{dir}": d, "{file}": re.escape(shlex.quote(s.compose_file)), "{files}": files,
                "{upstream}": re.escape(shlex.quote(s.switch.upstream_file)), "{switch}": switch_pattern(s),
                "{env}": r'(?: DEPLOY_ENV_FILE="\$\(f=[^"]*; \[ -f "\$f" \] && echo "\$PWD/\$f" \|\| echo /dev/null\)")?'}
        self.commands: list[tuple[str, re.Pattern, str]] = []  # (what, regex, method)
        for what, pattern, method in COMMANDS:
            for name, value in fill.items():
                pattern = pattern.replace(name, value)
            self.commands.append((what, re.compile(pattern), method))
        self.compose = self.regex("compose")
        self.record = self.regex("write_record")
        self.upstream = f"sh {shlex.quote(s.switch.upstream_file)} "
        self.lock = f"mkdir .fab-bluegreen/{s.app}.lock"

    def regex(self, method: str) -> re.Pattern:
        return next(rx for _, rx, m in self.commands if m == method)


def switch_pattern(s: HostSettings) -> str:
    """switch.command with its {color} and {port} found (a pattern that never matches without one)."""
    if s.switch.mode != "command":
        return "(?!)"
    line = re.escape(s.switch.command.format(color="FBGCOLOR", port="FBGPORT"))
    return line.replace("FBGCOLOR", "(?P<color>blue|green)").replace("FBGPORT", r"\d+")


DEFAULT = Patterns(HostSettings(name="fake", ssh="fake"))
ARM, DISARM, HEARTBEAT = DEFAULT.arm, DEFAULT.disarm, DEFAULT.heartbeat
COMPOSE, RECORD, UPSTREAM = DEFAULT.compose, DEFAULT.record, DEFAULT.upstream


class FakeHost:
    def __init__(self, running: dict[str, list[str]] | None = None, record: str = "",
                 upstream_port: int | None = 18001, fail: tuple[str, ...] = (), checks: str = "",
                 queued: dict[str, int] | None = None, exit_codes: dict[str, int] | None = None,
                 history: str = "", lock: str = "", settings: HostSettings | None = None):
        self.p = Patterns(settings) if settings else DEFAULT  # the shape of this host's commands
        # containers: (colour, service) -> state
        self.containers = {(c, s): "running" for c, services in (running or {}).items() for s in services}
        # what the commands did, in order: ("check",), ("prepare", line), ("stop", colour, service),
        # ("start", colour, service), ("down", colour, service), ("switch", upstream text), ...
        self.events: list[tuple[str, ...]] = []
        self.record = record
        self.history = history  # the history file's text (lines the tool appends are not kept)
        self.lock = lock  # the info of a lock someone else holds: taking it fails ("": free)
        self.stale = ""  # why that lock is stale (guard.staleness: reboot, guard gone), "" when it is not
        self.upstream = f"upstream app_backend {{ server 127.0.0.1:{upstream_port}; }}" if upstream_port else ""
        self.checks = "ok ssh deploy@fake\nok sudo passwordless\ninfo cpus 1\n" + checks  # the pre-flight
        self.fail = list(fail)  # substrings of commands that exit 1, each the first time it is seen
        self.held: set[tuple[str, str]] = set()  # containers whose restart policy is off (restart.hold)
        self.guard_armed = False
        self.journal: dict[int, str] = {}  # the undo journal's files in the lock's folder: number -> text
        self.freed_journal: dict[int, str] = {}  # the journal the last unlock removed
        self.guard_acts = False  # the guard acted before fab's disarm reached it
        self.trips = 0  # round trips so far
        self.fail_trip = 0  # this round trip fails (see answer())
        self.cut_trip = 0  # from this round trip on, the link is gone (see answer())
        self.guard_acts_after = ""  # a command after which the guard acts (fab silent too long)
        self.heartbeats = 0  # heartbeats since the guard was armed
        self.nginx_workers = "101 102"  # the PIDs of nginx's workers the facts report
        self.queued = {"celery": 0, "unacked": 0, **(queued or {})}  # the old colour's broker
        self.exit_codes = exit_codes or {}  # service -> exit code after a stop (137: killed)
        self.env_files: dict[str, bytes] = {}  # colour -> its secrets file (state.write_env, compose.remove)
        self.copies: dict[tuple[str, str], bytes] = {}  # (colour, name) -> its uploaded copy (state.write_copy)
        self.queued_in = "blue"  # the colour whose broker holds self.queued
        self.workers_run_queue = True  # that colour's worker, started, empties its queues
        # the open connections to the old colour's port, second by second while cleanup waits (the
        # last one holds on); None: they cannot be counted (no ss on the host)
        self.open_connections: list[int] | None = [0]
        self.images = "zstd\nstore []\nfree 9999999 /var/lib/docker\n"  # what shell.images.inventory() prints
        self.lowered: list[bool] = []  # per round trip: sent at the lowest priority (base.low_priority)
        self.remote = RecordingRemote(name="fake", answer=self.answer)

    @property
    def commands(self) -> list[str]:
        return self.remote.commands

    def answer(self, command: str):
        """One round trip: (exit code, output). The riders first, then COMMANDS, in order. Round trip
        number `fail_trip` (counted in `trips`) fails once its riders ran (its own command does not
        run); from round trip `cut_trip` on, the link is gone: that one runs, fab hears nothing
        (Unreachable), and no later one reaches the host."""
        self.trips += 1
        if self.cut_trip and self.trips > self.cut_trip:
            raise Unreachable("the link is gone (a simulated cut)")
        said = self.answer_one(command)
        if self.trips == self.cut_trip:
            raise Unreachable("the link is gone (a simulated cut)")
        return said

    def answer_one(self, command: str):
        out = ""
        if self.p.arm.search(command):
            self.guard_armed = True
            self.heartbeats = 0
        if self.p.disarm.search(command):
            self.guard_armed = False
            out += f"{MARK}{'guard-acted' if self.guard_acts else 'disarmed'}\n"
        self.heartbeats += len(self.p.heartbeat.findall(command))
        if self.p.heartbeat.search(command) and self.guard_acts:  # the guard acted: the command does not run
            return 9, out + "@@fbg:why the guard is no longer armed: it put the host back\n"
        self.lowered.append(bool(self.p.low.search(command)))
        for m in self.p.note.finditer(command):
            self.journal[int(m.group(2))] = shlex.split(m.group(1))[0]
        rest = self.p.note.sub("", command)
        rest = self.p.heartbeat.sub("", self.p.disarm.sub("", self.p.arm.sub("", self.p.low.sub("", rest))))
        if self.guard_acts and "fbg_guard" in rest:  # finish(): only the branch the guard's having acted takes
            rest = rest.split("; else ", 1)[1]
        known = [(rx, method) for _, rx, method in self.p.commands if rx.search(rest)]
        if not known and re.sub(r"[\s;&{}()]", "", rest):
            raise UnknownCommand(f"the fake host does not know this command (add it to COMMANDS in "
                                 f"tests/unit/fakehost.py): {command}")
        for rx, method in known:
            if method.startswith("read_"):  # the whole round trip's answer; never a step a test fails
                exited, said = getattr(self, method)(rx.search(rest))
                return exited, out + said
        if self.trips == self.fail_trip:
            return 1, out + "simulated failure of this round trip\n"
        if self.guard_acts_after and self.guard_acts_after in rest:
            self.guard_acts = True  # fab is silent after this command, past the guard's deadline
        failed = next((needle for needle in self.fail if needle in rest), None)
        if failed:  # what comes before it in the line ran (and said so); it and what follows did not
            self.fail.remove(failed)
            rest = rest[:rest.index(failed)]
        out += self.markers(rest)
        for rx, method in known:
            for m in rx.finditer(rest):
                said = getattr(self, method)(m)
                if isinstance(said, tuple):  # an exit code of its own: the rest of the line did not run
                    return said[0], out + said[1]
                out += said
        if failed:
            return 1, out + f"simulated failure of {failed}\n"
        return 0, out

    # --- how each command of COMMANDS plays: method(match) -> output, or (exit code, output) ---

    def noop(self, m: re.Match) -> str:
        return ""

    def read_preflight(self, m: re.Match) -> tuple[int, str]:
        self.events.append(("check",))
        return 0, self.checks + (self.facts() if f"echo {section(probe.RECORD)}" in m.string else "")

    def read_facts(self, m: re.Match) -> tuple[int, str]:
        return 0, self.facts() + (self.status_sections() if f"echo {section(probe.LOCK)}" in m.string else "")

    def read_history(self, m: re.Match) -> tuple[int, str]:
        return 0, self.history

    def read_env(self, m: re.Match) -> tuple[int, str]:
        return 0, self.env_files.get(m.group(1), b"").decode()

    def read_images(self, m: re.Match) -> tuple[int, str]:
        return 0, f"{MARK}images\n{self.images}"

    def take_lock(self, m: re.Match) -> str | tuple[int, str]:
        if self.lock:
            return 3, f"held 1042 1000\n{self.lock}\n"
        self.events.append(("lock",))
        return ""

    def read_front_memory(self, m: re.Match) -> tuple[int, str]:
        ids = m.string[m.end():].split(";")[0].split()
        return 0, "20MiB / 1GiB\n" * len(ids) + f"{MARK}available\n1048576\n"

    def unlock(self, m: re.Match) -> str:
        self.events.append(("unlock",))
        self.freed_journal, self.journal = self.journal, {}  # in the lock's folder: gone with it (kept for tests)
        return ""

    def prepare(self, m: re.Match) -> str:
        self.events.append(("prepare", m.group(2)))
        return ""

    def hook(self, m: re.Match) -> str:
        self.events.append(("hook", m.group(2)))
        return ""

    def append_history(self, m: re.Match) -> str:
        self.events.append(("history",))
        return ""

    def switch_command(self, m: re.Match) -> str:
        self.events.append(("switch", m.group("color")))
        return ""

    def list_created(self, m: re.Match) -> str:
        """compose.created(): the colour's containers, oldest first (as the fake created them)."""
        return "".join(f"created {s} id{c}{s}\n" for (c, s) in self.containers if c == m.group(1))

    def start_created(self, m: re.Match) -> str:
        color = re.search(r"label=com\.docker\.compose\.project=\S+-(blue|green) ", m.string).group(1)
        for service in shlex.split(m.group(1))[0].split():
            self.set_state((color, service), "running")
        return ""

    def start_ids(self, m: re.Match) -> str:
        ids = " ".join(shlex.split(m.group(1))).split()
        for key in [k for k in self.containers if f"id{k[0]}{k[1]}" in ids]:
            self.set_state(key, "running")
            self.ran_queue(*key)
        return "capped\n" if m.group(0).startswith("\nids=") else ""
    def start_unless(self, m: re.Match) -> str | tuple[int, str]:
        """compose.start_unless_running(): refused while one of those services of that colour runs."""
        services = shlex.split(m.group(2).replace("-e ", ""))
        running = [x for x in services if self.containers.get((m.group(1), x)) == "running"]
        return (1, f"@@fbg:why not started: {' '.join(running)} still runs\n") if running else ""

    def undo_commands(self, freed: bool = False) -> list[str]:
        """What the guard would run: the journal's commands (each file but its `# words` line), newest
        first (freed: the journal the last unlock removed)."""
        journal = self.freed_journal if freed else self.journal
        return [journal[n].split("\n", 1)[1].rstrip("\n") for n in sorted(journal, reverse=True)]

    def undo_words(self, freed: bool = False) -> list[str]:
        journal = self.freed_journal if freed else self.journal
        return [journal[n].split("\n", 1)[0][2:] for n in sorted(journal, reverse=True)]

    def hold(self, m: re.Match) -> str:
        for key in self.held_ones(m):
            self.held.add(key)
            self.events.append(("hold", *key))
        return ""

    def give_back(self, m: re.Match) -> str:
        for key in self.held_ones(m):
            if key in self.held:
                self.held.discard(key)
                self.events.append(("give back", *key))
        return ""

    def held_ones(self, m: re.Match) -> list[tuple[str, str]]:
        """The containers whose IDs the `fbg_ids=$(...)` in front of m prints (restart.listed, compose.ids_of)."""
        ids = m.string[:m.start()].rsplit("fbg_ids=$(", 1)[1].split(") && [ -n", 1)[0]
        project = re.search(rf"label=com\.docker\.compose\.project={re.escape(self.p.app)}-(\w+)", ids)
        if not project:
            return [k for k in self.containers if f"id{k[0]}{k[1]}" in ids.split()]
        services = re.findall(r"label=com\.docker\.compose\.service=([\w.-]+)", ids)
        return [k for k in self.containers if k[0] == project.group(1) and (not services or k[1] in services)]

    def stop_ids(self, m: re.Match) -> str:
        for key in [k for k in self.containers if f"id{k[0]}{k[1]}" in m.group(1).split()]:
            self.set_state(key, "exited")
        return ""

    def write_upstream(self, m: re.Match) -> str:
        if m.start() != m.re.search(m.string).start():
            return ""  # a later write in the same line puts the old text back if nginx -t rejects the new
        lexer = shlex.shlex(m.string[m.end():], posix=True)
        lexer.whitespace_split = True
        self.upstream = lexer.get_token()  # the file's new text: the first word after its path
        self.events.append(("switch", self.upstream))
        return ""

    def write_env(self, m: re.Match) -> str:
        self.env_files[m.group(1)] = self.remote.puts[-1][1]  # the text came on stdin (Remote.put)
        return ""

    def remove_env(self, m: re.Match) -> str:
        self.env_files.pop(m.group(1), None)
        return ""

    def write_copy(self, m: re.Match) -> str:
        self.copies[(m.group(1), m.group(2))] = self.remote.puts[-1][1]  # the text came on stdin too
        self.events.append(("upload", m.group(1), m.group(2)))
        return ""

    def remove_copy(self, m: re.Match) -> str:
        self.copies = {k: v for k, v in self.copies.items() if k[0] != m.group(1)}
        return ""

    def write_record(self, m: re.Match) -> str:
        self.record = shlex.split(m.group(1))[0]
        self.events.append(("record",))
        return ""

    def health(self, m: re.Match) -> str:
        return "try 1 200\n"

    def facts_riding(self, m: re.Match) -> str:
        return self.facts()

    def count_queued(self, m: re.Match) -> str:
        return (f"{section(probe.QUEUED)}\n" if f"echo {section(probe.QUEUED)}" in m.string else "") + self.counts()

    def containers_after_stop(self, m: re.Match) -> str:
        if f"echo {section(probe.RECORD)}" in m.string:
            return ""  # the facts' own section (facts_riding)
        return f"{section(probe.CONTAINERS)}\n" + self.container_lines()

    # --- the fake state ------------------------------------------------------------------------

    def set_state(self, key: tuple[str, str], state: str) -> None:
        """A container's new state, and its event: start, stop or down (removed)."""
        event = {"running": "start", "exited": "stop", "removed": "down", "created": "create"}[state]
        if state == "removed":
            self.containers.pop(key, None)
        else:
            self.containers[key] = state
        self.events.append((event, *key))

    def stopped(self, color: str, service: str) -> int | None:
        """Index in self.events of the first stop of that container (None: never stopped)."""
        return next((i for i, e in enumerate(self.events) if e == ("stop", color, service)), None)

    @staticmethod
    def markers(line: str) -> str:
        """What `echo @@fbg:started ...` parts of a line print (the steps that got that far)."""
        return "".join(f"{m.group(1)}\n" for m in re.finditer(rf"echo ({MARK}started(?: [\w.-]+)?)(?=[ ;&]|$)", line))

    def counts(self) -> str:
        state = self.containers.get((self.queued_in, "redis"))
        if state is None:
            return "no-broker\n"
        if state != "running":
            return f"broker-down {state}\n"
        return "".join(f"{q} {n}\n" for q, n in self.queued.items())

    def wait_closed(self, m: re.Match) -> tuple[int, str]:
        """connections.wait_closed(): `open N` each time the count changes, one count a second, until
        none is open (exit 0) or its seconds have passed (exit 1); exit 3 when they cannot be counted."""
        if self.open_connections is None:
            return 3, "@@fbg:why could not count the open connections: ss not found\n"
        seconds = int(re.search(r"end=\$\(\( \$\(date \+%s\) \+ (\d+) \)\)", m.string).group(1))
        counts = (self.open_connections + self.open_connections[-1:] * seconds)[:seconds + 1]
        if 0 in counts:
            counts = counts[:counts.index(0) + 1]
        out = "".join(f"open {n}\n" for i, n in enumerate(counts) if i == 0 or n != counts[i - 1])
        return (0 if counts[-1] == 0 else 1), out

    def compose(self, m: re.Match) -> str:
        """docker compose VERB [ARGS] [SERVICES] for a colour's project (every service when none is named)."""
        color, verb, args = m.group(1), m.group(2), m.group(3).split()
        if verb not in ("up", "start", "stop", "down", "logs", "exec", "ps", "config", "build"):  # the others change nothing
            raise UnknownCommand(f"the fake host does not know `compose {verb}`: {m.string}")
        args = [a for a, before in zip(args, ["", *args]) if before != "--pull"]  # its value is no service
        services = [a for a in args if re.fullmatch(r"[A-Za-z][\w.-]*", a)]
        if not services:
            services = [s for (c, s) in self.containers if c == color]
        creating = verb == "up" and "--no-start" in args and "echo capped" not in m.string  # compose.create()
        for s in services:
            if creating:
                self.set_state((color, s), "created")
            elif verb in ("up", "start"):
                self.set_state((color, s), "running")
                self.ran_queue(color, s)
            elif verb == "stop" and (color, s) in self.containers:
                self.set_state((color, s), "exited")
            elif verb == "down":
                self.set_state((color, s), "removed")
        return "capped\n" if verb == "up" and "--no-start" in args and not creating else ""

    def ran_queue(self, color: str, service: str) -> None:
        if service == "worker" and color == self.queued_in and self.workers_run_queue:
            self.queued = dict.fromkeys(self.queued, 0)

    def facts(self) -> str:
        last = (self.history.splitlines() or [""])[-1]
        return "".join(f"{section(name)}\n{text}\n" for name, text in (
            (probe.RECORD, self.record), (probe.UPSTREAM, self.upstream), (probe.NGINX, self.nginx_workers),
            (probe.GIT, ""), (probe.COMPOSE, "yes"), (probe.HISTORY, last))) + (
            f"{section(probe.CONTAINERS)}\n" + self.container_lines())

    def status_sections(self) -> str:
        """What probe.status() adds to the facts: the lock, the last guard line, health, lifts."""
        guard = [line for line in self.history.splitlines() if '"action":"guard"' in line][-1:]
        held = f"held 1042 1000\n{self.lock}\n" if self.lock else ""
        undo = "".join(f"undo {words}\n" for words in self.undo_words())  # journal.show()
        return (f"{section(probe.LOCK)}\n{held}{section(probe.STALE)}\n{self.stale}\n{section(probe.UNDO)}\n{undo}"
                f"{section(probe.GUARD)}\n{''.join(g + chr(10) for g in guard)}"
                f"{section(probe.HEALTH)}\nblue 200\ngreen 000\n{section(probe.LIFT)}\n")

    def container_lines(self) -> str:
        """compose.containers()'s lines; a stopped container exits with its exit_codes entry (or 0)."""
        return "".join(f"{self.p.app}-{c} {s} {state} 0 sha256:{c}{s} id{c}{s} "
                       f"{self.exit_codes.get(s, 0) if state == 'exited' else 0}\n"
                       for (c, s), state in self.containers.items())

    def state(self, color: str) -> dict[str, str]:
        return {s: state for (c, s), state in self.containers.items() if c == color}

    def index(self, needle: str) -> int:
        """Position of the first command containing needle outside the guard's own commands (and the
        journal's entries)."""
        return next(i for i, c in enumerate(self.p.low.sub("", c) for c in self.commands)
                    if needle in self.p.note.sub("", self.p.disarm.sub("", self.p.arm.sub("", c)))
                    and not c.startswith("say() {"))
