"""Mistakes on the command line are usage errors: one line on stderr, exit code 2, no host contacted.

`fab` is Fabric's own program (fabric.main.program): it loads fabfile.py, then parses the task
names and options with Invoke's parser. Left alone, that parser reports an unknown task, option
or argument as "No idea what 'x' is!" with exit code 1, and an option value it cannot convert
(`--batch abc`) as a traceback. Two small pieces make them usage errors, with no program of
our own (which would have to replace Fabric's `fab`):

- Task, the tasks' class: a whole-number option's bad value is a ParseError naming the option;
- strict(program), called by fabfile.py as the program loads it: the parsing steps that follow
  turn every ParseError into `error: ...` and exit code 2. `fab -l`, `fab -h` and
  `fab --help TASK` are untouched.
"""

from __future__ import annotations

import ast
import functools
import re

from invoke.exceptions import Exit, ParseError
from invoke.parser import Argument
from invoke.tasks import Task as InvokeTask

from .mask import shown

NO_IDEA = re.compile(r"^No idea what (.+) is!$", re.S)
NO_VALUE = re.compile(r"^Flag <\w+: ([\w-]+).*> needed value and was not given one!$", re.S)


class WholeNumber(Argument):
    """An int option: `--batch abc` says which option wanted what, instead of a ValueError."""

    def set_value(self, value, cast: bool = True) -> None:
        if cast and isinstance(value, str) and not self.incrementable:
            try:
                int(value, 10)
            except ValueError:
                raise ParseError(f"{_flag(self.names[0])} expects a whole number, got {value!r}") from None
        super().set_value(value, cast)


class Task(InvokeTask):
    """Invoke's task, with strict whole-number options (see WholeNumber). Fabric's `fab` runs it as
    it runs its own (Fabric's task class adds only a `hosts` list, which these tasks do not use), and
    importing it loads neither Fabric nor paramiko."""

    def get_arguments(self, ignore_unknown_help=None) -> list[Argument]:
        return [WholeNumber(names=a.names, kind=a.kind, default=a.default, help=a.help, positional=a.positional,
                            optional=a.optional, incrementable=a.incrementable, attr_name=a.attr_name)
                if a.kind is int else a for a in super().get_arguments(ignore_unknown_help)]


def strict(program) -> None:
    """Make the running program report the command line's mistakes as usage errors (exit code 2).

    Called while the program loads the tasks, so it applies to the parsing that follows: the
    task names and their options (parse_tasks), and `--help TASK` (parse_cleanup)."""
    if getattr(program, "_bluegreen_strict", False):
        return
    for step in ("parse_tasks", "parse_cleanup"):
        setattr(program, step, _usage_errors(program, getattr(program, step)))
    program._bluegreen_strict = True


def _usage_errors(program, step):
    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        try:
            return step(*args, **kwargs)
        except ParseError as e:
            raise Exit(f"error: {shown(explain(e, _task_names(program)))}", code=2) from None
        except ValueError as e:  # an option of Invoke's own that wanted a number
            raise Exit(f"error: a value on the command line is not what its option expects: {shown(str(e))}",
                       code=2) from None

    return wrapper


def _task_names(program) -> list[str]:
    collection = getattr(program, "collection", None)
    return list(collection.task_names) if collection is not None else []


def explain(e: ParseError, tasks: list[str]) -> str:
    """Invoke's parse error in the tool's words: what was wrong, and what was expected."""
    message = " ".join(str(e).split())
    task = getattr(e.context, "name", None)  # the task whose options were being read, if any
    if m := NO_IDEA.match(message):
        token = _literal(m.group(1))
        known = f"the tasks: {', '.join(tasks)}" if tasks else "fab -l lists the tasks"
        if token.startswith("-"):
            flag = token.split("=", 1)[0]
            flag = flag if flag.isprintable() else repr(flag)  # one line, whatever was typed
            if task:
                return f"{task} has no option {flag} (fab --help {task} lists its options)"
            return f"unknown option {flag} (fab -h lists fab's own options; a task's come after its name)"
        if task:
            return (f"unexpected {token!r}: {task} takes options only (fab --help {task} lists them), "
                    f"and there is no task {token!r} ({known})")
        return f"unknown task {token!r} ({known})"
    if m := NO_VALUE.match(message):
        return f"{_flag(m.group(1))} needs a value"
    return message


def _flag(name: str) -> str:
    name = name.replace("_", "-")
    return f"-{name}" if len(name) == 1 else f"--{name}"


def _literal(text: str) -> str:
    """The token Invoke quoted with repr()."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text
