"""A small simulated host for unit tests of the sequence: it answers the commands of
tasks/commands.py by updating a dict of containers, and fails the steps a test asks it to."""

from __future__ import annotations

import re
import shlex

from tasks.commands import MARK
from tasks.remote import RecordingRemote


class FakeHost:
    def __init__(self, running: dict[str, list[str]] | None = None, record: str = "",
                 upstream_port: int | None = 18001, fail: tuple[str, ...] = (), checks: str = ""):
        # containers: (colour, service) -> state
        self.containers = {(c, s): "running" for c, services in (running or {}).items() for s in services}
        self.record = record
        self.upstream = f"upstream app_backend {{ server 127.0.0.1:{upstream_port}; }}" if upstream_port else ""
        self.checks = "ok ssh deploy@fake\nok sudo passwordless\n" + checks  # the pre-flight's answer
        self.fail = list(fail)  # substrings of commands that exit 1, each the first time it is seen
        self.remote = RecordingRemote(name="fake", answer=self.answer)

    @property
    def commands(self) -> list[str]:
        return self.remote.commands

    def answer(self, command: str):
        if "app.guard" in command:  # arming or disarming the guard: recorded, nothing else
            return None
        if command.startswith("say() {"):
            return 0, self.checks
        if ".samples" in command:  # the CPU and memory sampler: nothing to simulate
            return None
        if command.lstrip().startswith("n=$(nproc"):
            return 0, "1\n"
        for needle in self.fail:
            if needle in command:
                self.fail.remove(needle)
                return 1, f"simulated failure of {needle}"
        if command.startswith(f"echo {MARK}record"):
            return 0, self.facts()
        m = re.search(r"-p app-(blue|green) -f compose.yml up --no-start --force-recreate --no-deps ([\w ]+?) \|\|", command)
        if m and not any(needle in command for needle in self.fail):
            for service in m.group(2).split():
                self.containers[(m.group(1), service)] = "running"
            return 0, "capped\n"
        m = re.search(r"-p app-(blue|green) -f compose.yml (\w+) (.*)$", command)
        if m:
            self.compose(m.group(1), m.group(2), shlex.split(m.group(3)))
        if "sudo -n sh -c" in command:
            self.upstream = shlex.split(command)[-1]
        if "mv -f .fab-bluegreen/app.json.tmp" in command:
            self.record = shlex.split(command.split("printf '%s\\n' ", 1)[1])[0]
        if command.startswith("i=0; while"):
            return 0, "try 1 200\n"
        return None

    def compose(self, color: str, verb: str, args: list[str]) -> None:
        services = [a for a in args if not a.startswith("-") and not a.isdigit()]
        if not services:
            services = [s for (c, s) in self.containers if c == color]
        for s in services:
            if verb in ("up", "start"):
                self.containers[(color, s)] = "running"
            elif verb == "stop" and (color, s) in self.containers:
                self.containers[(color, s)] = "exited"
            elif verb == "down":
                self.containers.pop((color, s), None)

    def facts(self) -> str:
        lines = [f"app-{c} {s} {state} 0 sha256:{c}{s} id{c}{s} 0" for (c, s), state in self.containers.items()]
        return (f"{MARK}record\n{self.record}\n{MARK}upstream\n{self.upstream}\n{MARK}git\n\n"
                f"{MARK}compose\nyes\n{MARK}containers\n" + "\n".join(lines) + "\n")

    def state(self, color: str) -> dict[str, str]:
        return {s: state for (c, s), state in self.containers.items() if c == color}

    def index(self, needle: str) -> int:
        """Position of the first command containing needle (fails the test if absent)."""
        return next(i for i, c in enumerate(self.commands) if needle in c and "app.guard" not in c and not c.startswith("say() {"))
