"""The installed command `fab-bluegreen`: Fabric's own program (fabric.main.Fab, what `fab` runs) with
this tool's tasks bundled, so it looks for no fabfile and runs from any folder. Every task, option
and exit code is as under `fab`; the hosts file is found as `fab` finds a fabfile (edge.py).

Its own options are strict as the tasks' are (cmdline.py: `fab-bluegreen -t abc` is one line and
exit code 2), and --version names this tool's version and Fabric's, Invoke's and Paramiko's."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from fabric import Config, Executor
from fabric.main import Fab

from . import cmdline, ns

DISTRIBUTION = "fab-bluegreen"


def version() -> str:
    """This tool's version: from pyproject.toml when run from a checkout (an editable install's
    metadata is as old as the install), else the installed package's metadata."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == DISTRIBUTION:
            return str(project["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


class Program(Fab):
    """`fab` with the tasks bundled: `-l`, `-h`, `--help TASK` and Fabric's options as there."""

    def core_args(self):
        return cmdline.strict_arguments(super().core_args())  # -t/-T/-D abc: one line, exit code 2

    def print_version(self) -> None:
        import invoke
        import paramiko

        import fabric

        print(f"{DISTRIBUTION} {self.version}")
        print(f"Fabric {fabric.__version__}")
        print(f"Invoke {invoke.__version__}")
        print(f"Paramiko {paramiko.__version__}")


def make_program() -> Program:
    program = Program(name=DISTRIBUTION, binary=DISTRIBUTION, binary_names=[DISTRIBUTION], version=version(),
                      namespace=ns, executor_class=Executor, config_class=Config)
    cmdline.strict(program)
    return program


def main() -> None:
    """The console script: `fab-bluegreen ARGS`."""
    make_program().run()
