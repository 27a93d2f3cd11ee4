"""What every command line is built from: where it runs (the app's dir, `~` meaning the SSH user's
home) and what its output carries for the tool to read (section markers, reasons in the tool's words).
"""

from __future__ import annotations

from shlex import quote

from ..config.schema import HostSettings

MARK = "@@fbg:"  # section markers in the output of facts()


class Command(str):
    """A command line and the seconds it may take (its budget), both decided by the builder that
    knows what the command waits for, so that no caller recomputes a time limit. It is its line
    (a str): it joins, prints and compares as one; a plain str is a command without a budget."""

    budget: float

    def __new__(cls, line: str, budget: float) -> "Command":
        command = super().__new__(cls, line)
        command.budget = budget
        return command

    def then(self, other: "Command", joined: str = " && ") -> "Command":
        """Both in one round trip: the line joined, the budgets added."""
        return Command(f"{self}{joined}{other}", self.budget + budget_of(other))


def started(name: str) -> str:
    """The line in_order() prints once the part called `name` worked."""
    return f"{MARK}started {name}"


def reached(stdout: str, marker: str) -> bool:
    """The part of an in_order() round trip that prints `marker` (started(name)) worked."""
    return marker in stdout.splitlines()


def in_order(parts: list[tuple[str, Command]], then: Command) -> Command:
    """Several steps in one round trip: each part (name, command) in its own shell (a part may end
    with `exit`), printing started(name) once it worked, then `then`; the first part that fails
    ends the line with its exit code."""
    line = then
    for name, part in reversed(parts):
        line = Command(f"( {part} ) && echo {started(name)}", part.budget).then(line)
    return line


def budget_of(command: str, default: float = 0.0) -> float:
    return command.budget if isinstance(command, Command) else default


def step(s: HostSettings, line: str) -> Command:
    """A command that waits for nothing of its own: timeouts.command."""
    return Command(line, s.timeouts.command)


def remote_path(path: str) -> str:
    """A path for the remote shell: quoted, with a leading ~ meaning the SSH user's home. A relative
    path is relative to that home too (where an SSH session starts), wherever a command has gone
    since: a line that does `cd` twice (`cd dir && ...; cd dir && ...`) lands in the same folder."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + quote(path[2:])
    if not path.startswith("/"):
        return '"$HOME"/' + quote(path)
    return quote(path)


def in_dir(s: HostSettings, line: str) -> str:
    return f"cd {remote_path(s.dir)} && {line}"


SYSTEMD = "/run/systemd/system"  # there when systemd runs the host


def low_priority() -> str:
    """The tool's own work on the host (its docker calls, the sampler, the guard) at the lowest CPU
    and I/O priority the host offers, so that the live site comes first: this shell, and all it
    starts, at nice 19 and in the idle I/O class; where systemd runs, also moved into a scope of
    its own with CPU weight 1 (100 is the default), beside the containers' scopes in system.slice,
    through sudo -n (a user's scope would weigh only against the user's own processes, and nice
    only within the session's own cgroup). Each is skipped where the host does not allow it."""
    scope = ("sudo -n busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
             "org.freedesktop.systemd1.Manager StartTransientUnit 'ssa(sv)a(sa(sv))' "
             "\"fbg-low-$$-$(date +%s%N).scope\" fail 2 PIDs au 1 $$ CPUWeight t 1 0")
    return (f"renice -n 19 -p $$ >/dev/null 2>&1; ionice -c 3 -p $$ >/dev/null 2>&1; "
            f"if [ -d {SYSTEMD} ]; then {scope} >/dev/null 2>&1; fi; :")


WHY = MARK + "why "  # a reason line of the tool's own, printed by a command that fails
LAST_LINE = '"$(echo "$out" | grep -v ^$ | tail -n 1)"'  # the last non-empty line of $out


def why(text: str, *args: str) -> str:
    """Print a reason line in the tool's own words: printf's format (quoted here) with shell
    expressions as its arguments (e.g. '"$codes"'); Result.why() prefers it to the last line."""
    return f"printf {quote(WHY + text + chr(92) + 'n')} {' '.join(args)}".rstrip()
