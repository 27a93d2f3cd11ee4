"""fab-bluegreen: zero-downtime blue-green deploys of Docker Compose apps to small hosts.

The collection `fab` runs (fabfile.py hands it over; installed, the command `fab-bluegreen` runs it:
program.py), built from the task modules: deploy.py, cleanup.py, inspect.py, unlock.py, init.py,
setup.py. Installed, this folder is the package fab_bluegreen (pyproject.toml), so every import
inside it is relative.
A fabfile may add it beside its own tasks: `ns.add_collection(fab_bluegreen.ns, "bg")`.
Light: listing the tasks, or importing tasks/config/ or tasks/shell/ in a test, loads neither
Fabric, paramiko nor rich (a task imports them when it runs).
"""

from invoke import Collection

from . import cleanup, cmdline, deploy, init, inspect, setup, unlock

cmdline.strict_fab()  # Fabric's `fab` loading a fabfile that imports this: usage errors exit 2 (cmdline.py)

ns = Collection(deploy.deploy, deploy.promote, deploy.rollback, cleanup.cleanup, cleanup.drain, inspect.check, inspect.status,
                inspect.history, inspect.logs, unlock.unlock, init.init, setup.setup)
