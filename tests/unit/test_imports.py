"""Importing the tasks, the settings or a command builder loads neither Fabric, paramiko nor rich: they
are imported when a task runs (the runner, the report), not when `fab -l` lists the tasks or a test
imports a pure builder. Checked in a fresh interpreter, where nothing was imported before."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("fabric", "paramiko", "rich")

# each module in turn; the first one that brings in a heavy package is named with it
CHECK = f"""
import importlib, json, pkgutil, sys
import tasks
import tasks.config, tasks.shell
names = ["tasks", "tasks.deploy", "tasks.cleanup", "tasks.inspect", "tasks.unlock", "tasks.edge", "tasks.cmdline"]
for package in (tasks.config, tasks.shell):
    names += [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
loaded = {{}}
for name in names:
    importlib.import_module(name)
    for heavy in {HEAVY!r}:
        if heavy in sys.modules and heavy not in loaded:
            loaded[heavy] = name
print(json.dumps({{"file": tasks.__file__, "modules": names, "loaded": loaded}}))
"""


def test_the_tasks_the_settings_and_the_command_builders_load_neither_fabric_paramiko_nor_rich():
    res = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert Path(found["file"]).resolve() == ROOT / "tasks" / "__init__.py"  # this checkout's, not an installed copy
    assert {"tasks.shell.compose", "tasks.shell.probe", "tasks.shell.state", "tasks.config.schema",
            "tasks.config.loader"} <= set(found["modules"])
    assert found["loaded"] == {}, f"imported by: {found['loaded']}"
