"""A small simulated host for unit tests of the sequence: it answers the commands of
tasks/commands.py by updating a dict of containers, and fails the steps a test asks it to.

Commands may carry others along (the guard's arming rides with the stop, the disarm with the
next command): those parts are recognised and taken out before the rest is simulated."""

from __future__ import annotations

import re
import shlex

from tasks.commands import MARK
from tasks.remote import RecordingRemote

ARM = re.compile(r": arm-guard;.*?echo \$! >> \.fab-bluegreen/app\.guard; \}", re.S)
DISARM = re.compile(r"\{ cd \"\$HOME\"/app && if grep -qF \S+ \.fab-bluegreen/app\.guard.*?fi; true; \}", re.S)
COMPOSE = re.compile(r"-p app-(blue|green) -f compose\.yml (\w+)([^;&|\n]*)")
RECORD = re.compile(r"printf '%s\\n' ('(?:[^']|'\"'\"')*') > \.fab-bluegreen/app\.json\.tmp")
UPSTREAM = "sh /etc/nginx/conf.d/app_upstream.conf "


class FakeHost:
    def __init__(self, running: dict[str, list[str]] | None = None, record: str = "",
                 upstream_port: int | None = 18001, fail: tuple[str, ...] = (), checks: str = "",
                 queued: dict[str, int] | None = None, exit_codes: dict[str, int] | None = None):
        # containers: (colour, service) -> state
        self.containers = {(c, s): "running" for c, services in (running or {}).items() for s in services}
        self.record = record
        self.upstream = f"upstream app_backend {{ server 127.0.0.1:{upstream_port}; }}" if upstream_port else ""
        self.checks = "ok ssh deploy@fake\nok sudo passwordless\ninfo cpus 1\n" + checks  # the pre-flight
        self.fail = list(fail)  # substrings of commands that exit 1, each the first time it is seen
        self.guard_armed = False
        self.queued = {"celery": 0, "unacked": 0, **(queued or {})}  # the old colour's broker
        self.exit_codes = exit_codes or {}  # service -> exit code after a stop (137: killed)
        self.queued_in = "blue"  # the colour whose broker holds self.queued
        self.workers_run_queue = True  # that colour's worker, started, empties its queues
        self.remote = RecordingRemote(name="fake", answer=self.answer)

    @property
    def commands(self) -> list[str]:
        return self.remote.commands

    def answer(self, command: str):
        if command.startswith("say() {"):  # the pre-flight, with the facts
            return 0, self.checks + (self.facts() if f"echo {MARK}record" in command else "")
        if command.startswith(f"echo {MARK}record"):
            return 0, self.facts()
        if ARM.search(command):
            self.guard_armed = True
        if DISARM.search(command):
            self.guard_armed = False
        rest = DISARM.sub("", ARM.sub("", command))
        for needle in self.fail:
            if needle in rest:
                self.fail.remove(needle)
                return 1, f"simulated failure of {needle}"
        out = ""
        for m in COMPOSE.finditer(rest):
            out = self.compose(m.group(1), m.group(2), m.group(3).split()) or out
        if UPSTREAM in rest:
            self.upstream = shlex.split(rest.split(UPSTREAM, 1)[1])[0]
        records = RECORD.findall(rest)
        if records:
            self.record = shlex.split(records[-1])[0]
        if rest.startswith("i=0; while"):
            return 0, "try 1 200\n"
        if f"echo {MARK}record" in rest:  # the facts, riding along with another command
            out += self.facts()
        if re.search(r"docker exec -i \"\$cid\" redis-cli -n \d+", rest):  # commands.count_queued()
            out += (f"{MARK}queued\n" if f"echo {MARK}queued" in rest else "") + self.counts()
        if f"echo {MARK}containers" in rest and f"echo {MARK}record" not in rest:  # commands.stop_reporting()
            out += f"{MARK}containers\n" + self.container_lines()
        return 0, out

    def counts(self) -> str:
        state = self.containers.get((self.queued_in, "redis"))
        if state is None:
            return "no-broker\n"
        if state != "running":
            return f"broker-down {state}\n"
        return "".join(f"{q} {n}\n" for q, n in self.queued.items())

    def compose(self, color: str, verb: str, args: list[str]) -> str:
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
        return (f"{MARK}record\n{self.record}\n{MARK}upstream\n{self.upstream}\n{MARK}git\n\n"
                f"{MARK}compose\nyes\n{MARK}containers\n" + self.container_lines())

    def container_lines(self) -> str:
        """commands.containers()'s lines; a stopped container exits with its exit_codes entry (or 0)."""
        return "".join(f"app-{c} {s} {state} 0 sha256:{c}{s} id{c}{s} "
                       f"{self.exit_codes.get(s, 0) if state == 'exited' else 0}\n"
                       for (c, s), state in self.containers.items())

    def state(self, color: str) -> dict[str, str]:
        return {s: state for (c, s), state in self.containers.items() if c == color}

    def index(self, needle: str) -> int:
        """Position of the first command containing needle outside the guard's own commands."""
        return next(i for i, c in enumerate(self.commands)
                    if needle in DISARM.sub("", ARM.sub("", c)) and not c.startswith("say() {"))
