"""Mistakes on the command line are usage errors: one line on stderr, exit code 2, no host contacted.

`fab` is Fabric's own program (fabric.main.program): it loads fabfile.py, then parses the task
names and options with Invoke's parser. Left alone, that parser reports an unknown task, option
or argument as "No idea what 'x' is!" with exit code 1, and an option value it cannot convert
(`--batch abc`) as a traceback. Small pieces make them usage errors:

- Task, the tasks' class: a whole-number option's bad value is a ParseError naming the option;
- strict(program): the parsing steps that follow turn every ParseError into `error: ...` and exit
  code 2, and a reader that goes away (`fab -l | head -1`) ends the run quietly (exit_closed).
  `fab -l`, `fab -h` and `fab --help TASK` are untouched. Importing this package while Fabric's
  `fab` loads a fabfile applies it to that program (strict_fab: the repository's fabfile.py, or
  a user's own that adds these tasks as a sub-collection); the installed `fab-bluegreen`
  (tasks/program.py) applies it to its own, whose own options are strict too (strict_arguments:
  `fab-bluegreen -t abc`). Fabric's `fab` parses its own options before it loads any fabfile, so
  there `fab -t abc` stays Fabric's ValueError.
- typed(task): a task as the user types it, for hints: `fab cleanup`, `fab-bluegreen cleanup`,
  `fab bg.cleanup`.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import select
import sys

from invoke.exceptions import Exit, ParseError
from invoke.parser import Argument
from invoke.tasks import Task as InvokeTask

from .mask import shown

NO_IDEA = re.compile(r"^No idea what (.+) is!$", re.S)
NO_VALUE = re.compile(r"^Flag <\w+: ([\w-]+).*> needed value and was not given one!$", re.S)


PIPE_CLOSED = 141  # the exit code of a program ended by SIGPIPE (128 + 13), as a shell reports it

_program = None  # the program running the tasks, once strict() has seen it (typed() names its binary)


class WholeNumber(Argument):
    """An int option: `--batch abc` says which option wanted what, instead of a ValueError."""

    def set_value(self, value, cast: bool = True) -> None:
        if cast and isinstance(value, str) and not self.incrementable:
            try:
                int(value, 10)
            except ValueError:
                raise ParseError(f"{_flags(self.names)} expects a whole number, got {value!r}") from None
        super().set_value(value, cast)


def strict_arguments(arguments: list[Argument]) -> list[Argument]:
    """The same arguments, each whole-number one a WholeNumber."""
    return [WholeNumber(names=a.names, kind=a.kind, default=a.default, help=a.help, positional=a.positional,
                        optional=a.optional, incrementable=a.incrementable, attr_name=a.attr_name)
            if a.kind is int else a for a in arguments]


class Task(InvokeTask):
    """Invoke's task, with strict whole-number options (see WholeNumber). Fabric's `fab` runs it as
    it runs its own (Fabric's task class adds only a `hosts` list, which these tasks do not use), and
    importing it loads neither Fabric nor paramiko."""

    def get_arguments(self, ignore_unknown_help=None) -> list[Argument]:
        return strict_arguments(super().get_arguments(ignore_unknown_help))


def strict(program) -> None:
    """Make the running program report the command line's mistakes as usage errors (exit code 2),
    and end quietly when its reader goes away.

    Called before the steps it changes run: as Fabric's `fab` loads the tasks (strict_fab), for the
    task names and their options (parse_tasks), `--help TASK` and `-l` (parse_cleanup) and the tasks
    themselves (execute); by the installed program before it starts, for its own options and
    --version (parse_core) too."""
    global _program
    _program = program
    if getattr(program, "_bluegreen_strict", False):
        return
    for step in ("parse_core", "parse_tasks", "parse_cleanup"):
        setattr(program, step, _usage_errors(program, getattr(program, step)))
    for step in ("parse_core", "parse_cleanup", "execute"):
        setattr(program, step, _quiet_when_closed(getattr(program, step)))
    program._bluegreen_strict = True


def strict_fab() -> None:
    """Fabric's `fab` is loading a fabfile that imports these tasks: make its program strict()."""
    main = sys.modules.get("fabric.main")  # never imported here: that would load Fabric for `fab -l`
    program = getattr(main, "program", None)
    if program is not None and program.argv and _program is None:  # argv: it runs (not a test importing)
        strict(program)


def typed(task_name: str) -> str:
    """One of this tool's tasks as the user types it: `fab cleanup`, `fab-bluegreen cleanup`, or
    `fab bg.cleanup` when a fabfile added the tasks as the sub-collection bg."""
    binary = getattr(_program, "binary", "") or "fab"
    collection = getattr(_program, "collection", None)
    for name in (collection.task_names if collection is not None else ()):
        if name.rsplit(".", 1)[-1] == task_name and collection[name].body.__module__.startswith(__package__ + "."):
            return f"{binary} {name}"
    return f"{binary} {task_name}"


def _usage_errors(program, step):
    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        try:
            return step(*args, **kwargs)
        except ParseError as e:
            raise Exit(f"error: {shown(explain(e, _task_names(program), program.binary or 'fab'))}",
                       code=2) from None
        except ValueError as e:  # an option of Invoke's own that wanted a number
            raise Exit(f"error: a value on the command line is not what its option expects: {shown(str(e))}",
                       code=2) from None

    return wrapper


def _quiet_when_closed(step):
    """A reader that went away (`fab -l | head -1`) ends the run as it ends every Unix tool: no
    traceback, and the exit code of a program ended by SIGPIPE (141), so that a `set -o pipefail`
    script sees the output was cut. Another broken pipe is not hidden. (A task's table piped into
    head is report.py's: the task carries on and keeps its own exit code.)"""

    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        try:
            try:
                return step(*args, **kwargs)
            finally:
                sys.stdout.flush()  # what print() left in the buffer fails here, not at exit
        except BrokenPipeError:
            if not stdout_closed():
                raise
            exit_closed()

    return wrapper


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports POLLERR on its write end)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def exit_closed():
    """Stdout's reader is gone: end the run with 141."""
    to_devnull(sys.stdout)
    raise Exit(code=PIPE_CLOSED)


def to_devnull(stream) -> None:
    """Nothing more goes to this stream, stdout or stderr, whose reader is gone (what is left in its
    buffer would fail again at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)


def _task_names(program) -> list[str]:
    collection = getattr(program, "collection", None)
    return list(collection.task_names) if collection is not None else []


def explain(e: ParseError, tasks: list[str], binary: str = "fab") -> str:
    """Invoke's parse error in the tool's words: what was wrong, and what was expected. A task is
    named as typed (`bg.deploy` when a fabfile added the tasks as the sub-collection bg), the
    program as called (fab, fab-bluegreen)."""
    message = " ".join(str(e).split())
    task = getattr(e.context, "name", None)  # the task whose options were being read, if any
    if m := NO_IDEA.match(message):
        token = _literal(m.group(1))
        known = f"the tasks: {', '.join(tasks)}" if tasks else f"{binary} -l lists the tasks"
        if token.startswith("-"):
            flag = token.split("=", 1)[0]
            flag = flag if flag.isprintable() else repr(flag)  # one line, whatever was typed
            if task:
                return f"{task} has no option {flag} ({binary} --help {task} lists its options)"
            return f"unknown option {flag} ({binary} -h lists its own options; a task's come after its name)"
        if task:
            return (f"unexpected {token!r}: {task} takes options only ({binary} --help {task} lists them), "
                    f"and there is no task {token!r} ({known})")
        return f"unknown task {token!r} ({known})"
    if m := NO_VALUE.match(message):
        return f"{_flag(m.group(1))} needs a value"
    return message


def _flag(name: str) -> str:
    name = name.replace("_", "-")
    return f"-{name}" if len(name) == 1 else f"--{name}"


def _flags(names) -> str:
    """An option by all its names, short first: --batch, -t/--connect-timeout."""
    return "/".join(sorted((_flag(n) for n in names), key=len))


def _literal(text: str) -> str:
    """The token Invoke quoted with repr()."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text
