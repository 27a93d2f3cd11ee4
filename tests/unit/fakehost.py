"""A small simulated host for unit tests of the sequence: it answers the commands of
tasks/shell/ by updating a dict of containers, and fails the steps a test asks it to.

Commands may carry others along (the guard's arming rides with the stop, the disarm with the
next command): those parts are recognised and taken out before the rest is simulated."""

from __future__ import annotations

import re
import shlex

from tasks.config.schema import HostSettings
from tasks.host.remote import RecordingRemote
from tasks.shell.base import MARK, remote_path


class Patterns:
    """How the commands of one host's settings look (app, dir, compose file, upstream file)."""

    def __init__(self, s: HostSettings):
        d, app = re.escape(remote_path(s.dir)), re.escape(s.app)
        self.app = s.app
        self.arm = re.compile(r": arm-guard;.*?could not start the guard on the host\\n'; exit 1; \}; \}\)?", re.S)
        self.disarm = re.compile(rf"\{{ cd {d} && if grep -qF \S+ \.fab-bluegreen/{app}\.guard 2>/dev/null && mv .*?"
                                 r"echo @@fbg:\$fbg_guard; \}", re.S)
        self.heartbeat = re.compile(
            rf"cd {d} && if grep -qF \S+ \.fab-bluegreen/{app}\.guard 2>/dev/null; then .*? "
            rf"echo \S+ \$\(\( \$\(date \+%s\) \+ \d+ \)\) > \"\$fbg_tmp\" && "
            rf"mv -f \"\$fbg_tmp\" \.fab-bluegreen/{app}\.guard\.until .*? \|\| exit 1; "
            r"else printf '@@fbg:why the guard is no longer armed.*?exit 9; fi; ")
        self.compose = re.compile(rf"-p {app}-(blue|green) -f {re.escape(shlex.quote(s.compose_file))} (\w+)([^;&|\n]*)")
        self.record = re.compile(r"printf '%s\\n' ('(?:[^']|'\"'\"')*') > \"\$fbg_tmp\" && mv -f \"\$fbg_tmp\" "
                                 rf"\.fab-bluegreen/{app}\.json ")
        self.upstream = f"sh {shlex.quote(s.switch.upstream_file)} "
        self.lock = f"mkdir .fab-bluegreen/{s.app}.lock"
        self.history = f"{s.app}.history.jsonl"
        self.env_write = re.compile(rf"cat > \"\$fbg_tmp\" && mv -f \"\$fbg_tmp\" \.fab-bluegreen/{app}\.(blue|green)\.env ")
        self.env_remove = re.compile(rf"rm -f \.fab-bluegreen/{app}\.(blue|green)\.env")
        self.env_read = re.compile(rf"cat \.fab-bluegreen/{app}\.(blue|green)\.env 2>/dev/null; true$")


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
        self.record = record
        self.history = history  # the history file's text (lines the tool appends are not kept)
        self.lock = lock  # the info of a lock someone else holds: taking it fails ("": free)
        self.upstream = f"upstream app_backend {{ server 127.0.0.1:{upstream_port}; }}" if upstream_port else ""
        self.checks = "ok ssh deploy@fake\nok sudo passwordless\ninfo cpus 1\n" + checks  # the pre-flight
        self.fail = list(fail)  # substrings of commands that exit 1, each the first time it is seen
        self.guard_armed = False
        self.guard_acts = False  # the guard acted before fab's disarm reached it
        self.guard_acts_after = ""  # a command after which the guard acts (fab silent too long)
        self.heartbeats = 0  # heartbeats since the guard was armed
        self.nginx_workers = "101 102"  # the PIDs of nginx's workers the facts report
        self.queued = {"celery": 0, "unacked": 0, **(queued or {})}  # the old colour's broker
        self.exit_codes = exit_codes or {}  # service -> exit code after a stop (137: killed)
        self.env_files: dict[str, bytes] = {}  # colour -> its secrets file (state.write_env, compose.remove)
        self.queued_in = "blue"  # the colour whose broker holds self.queued
        self.workers_run_queue = True  # that colour's worker, started, empties its queues
        # the open connections to the old colour's port, second by second while cleanup waits (the
        # last one holds on); None: they cannot be counted (no ss on the host)
        self.open_connections: list[int] | None = [0]
        self.images = "zstd\nstore []\nfree 9999999 /var/lib/docker\n"  # what shell.images.inventory() prints
        self.remote = RecordingRemote(name="fake", answer=self.answer)

    @property
    def commands(self) -> list[str]:
        return self.remote.commands

    def answer(self, command: str):
        if command.startswith("say() {"):  # the pre-flight, with the facts
            return 0, self.checks + (self.facts() if f"echo {MARK}record" in command else "")
        if command.startswith(f"echo {MARK}record"):  # the facts, or commands.status()
            return 0, self.facts() + (self.status_sections() if f"echo {MARK}lock" in command else "")
        if self.lock and self.p.lock in command:
            return 3, f"held 1042 1000\n{self.lock}\n"
        if command.startswith("if [ -f ") and "awk -v cut" in command and self.p.history in command:  # state.history()
            return 0, self.history
        if read := self.p.env_read.search(command):  # state.read_env()
            return 0, self.env_files.get(read.group(1), b"").decode()
        if command.startswith(f"echo {MARK}images"):  # shell.images.inventory(): build.where = "local"
            return 0, f"{MARK}images\n{self.images}"
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
        rest = self.p.heartbeat.sub("", self.p.disarm.sub("", self.p.arm.sub("", command)))
        if self.guard_acts and "fbg_guard" in rest:  # finish(): only the branch the guard's having acted takes
            rest = rest.split("; else ", 1)[1]
        if self.guard_acts_after and self.guard_acts_after in rest:
            self.guard_acts = True  # fab is silent after this command, past the guard's deadline
        failed = next((needle for needle in self.fail if needle in rest), None)
        if failed:  # what comes before it in the line ran (and said so); it and what follows did not
            self.fail.remove(failed)
            rest = rest[:rest.index(failed)]
        out += self.markers(rest)
        for m in self.p.compose.finditer(rest):
            out += self.compose(m.group(1), m.group(2), m.group(3).split())
        if self.p.upstream in rest:
            lexer = shlex.shlex(rest.split(self.p.upstream, 1)[1], posix=True)
            lexer.whitespace_split = True
            self.upstream = lexer.get_token()  # the file's new text: the first word after its path
        for color in self.p.env_write.findall(rest):  # the text came on the command's stdin (Remote.put)
            self.env_files[color] = self.remote.puts[-1][1]
        for color in self.p.env_remove.findall(rest):
            self.env_files.pop(color, None)
        records = self.p.record.findall(rest)
        if records:
            self.record = shlex.split(records[-1])[0]
        for m in re.finditer(r"docker stop -t \d+ ([^;>]*)", rest):  # compose.stop_ids()
            for key in [k for k in self.containers if f"id{k[0]}{k[1]}" in m.group(1).split()]:
                self.containers[key] = "exited"
        if rest.startswith("i=0; while") or "( i=0; while" in rest:  # health.wait_healthy()
            out += "try 1 200\n"
        if f"echo {MARK}record" in rest:  # the facts, riding along with another command
            out += self.facts()
        if re.search(r"docker exec -i \"\$cid\" redis-cli -n \d+", rest):  # commands.count_queued()
            out += (f"{MARK}queued\n" if f"echo {MARK}queued" in rest else "") + self.counts()
        if f"echo {MARK}containers" in rest and f"echo {MARK}record" not in rest:  # commands.stop_reporting()
            out += f"{MARK}containers\n" + self.container_lines()
        if "fbg_open() {" in rest:  # connections.wait_closed()
            return self.wait_closed(rest, out)
        if failed:
            return 1, out + f"simulated failure of {failed}\n"
        return 0, out

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

    def wait_closed(self, command: str, out: str) -> tuple[int, str]:
        """connections.wait_closed(): `open N` each time the count changes, one count a second, until
        none is open (exit 0) or its seconds have passed (exit 1); exit 3 when they cannot be counted."""
        if self.open_connections is None:
            return 3, out + "@@fbg:why could not count the open connections: ss not found\n"
        seconds = int(re.search(r"end=\$\(\( \$\(date \+%s\) \+ (\d+) \)\)", command).group(1))
        counts = (self.open_connections + self.open_connections[-1:] * seconds)[:seconds + 1]
        if 0 in counts:
            counts = counts[:counts.index(0) + 1]
        out += "".join(f"open {n}\n" for i, n in enumerate(counts) if i == 0 or n != counts[i - 1])
        return (0 if counts[-1] == 0 else 1), out

    def compose(self, color: str, verb: str, args: list[str]) -> str:
        args = [a for a, before in zip(args, ["", *args]) if before != "--pull"]  # its value is no service
        services = [a for a in args if re.fullmatch(r"[A-Za-z][\w.-]*", a)]
        if not services:
            services = [s for (c, s) in self.containers if c == color]
        for s in services:
            if verb in ("up", "start"):
                self.containers[(color, s)] = "running"
                if s == "worker" and color == self.queued_in and self.workers_run_queue:
                    self.queued = dict.fromkeys(self.queued, 0)
            elif verb == "stop" and (color, s) in self.containers:
                self.containers[(color, s)] = "exited"
            elif verb == "down":
                self.containers.pop((color, s), None)
        return "capped\n" if verb == "up" and "--no-start" in args else ""

    def facts(self) -> str:
        last = (self.history.splitlines() or [""])[-1]
        return (f"{MARK}record\n{self.record}\n{MARK}upstream\n{self.upstream}\n{MARK}nginx\n{self.nginx_workers}\n"
                f"{MARK}git\n\n"
                f"{MARK}compose\nyes\n{MARK}history\n{last}\n{MARK}containers\n" + self.container_lines())

    def status_sections(self) -> str:
        """What commands.status() adds to the facts: the lock, the last guard line, health, lifts."""
        guard = [line for line in self.history.splitlines() if '"action":"guard"' in line][-1:]
        held = f"held 1042 1000\n{self.lock}\n" if self.lock else ""
        return (f"{MARK}lock\n{held}{MARK}guard\n{''.join(g + chr(10) for g in guard)}"
                f"{MARK}health\nblue 200\ngreen 000\n{MARK}lift\n")

    def container_lines(self) -> str:
        """commands.containers()'s lines; a stopped container exits with its exit_codes entry (or 0)."""
        return "".join(f"{self.p.app}-{c} {s} {state} 0 sha256:{c}{s} id{c}{s} "
                       f"{self.exit_codes.get(s, 0) if state == 'exited' else 0}\n"
                       for (c, s), state in self.containers.items())

    def state(self, color: str) -> dict[str, str]:
        return {s: state for (c, s), state in self.containers.items() if c == color}

    def index(self, needle: str) -> int:
        """Position of the first command containing needle outside the guard's own commands."""
        return next(i for i, c in enumerate(self.commands)
                    if needle in self.p.disarm.sub("", self.p.arm.sub("", c)) and not c.startswith("say() {"))
