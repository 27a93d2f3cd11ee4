"""fab-bluegreen: zero-downtime blue-green deploys of Docker Compose apps to small hosts.

The collection `fab` runs (fabfile.py hands it over), built from the task modules: deploy.py,
cleanup.py, inspect.py, unlock.py, init.py, setup.py. Light: listing the tasks, or importing tasks/config/ or
tasks/shell/ in a test, loads neither Fabric, paramiko nor rich (a task imports them when it runs).
"""

from invoke import Collection

from . import cleanup, deploy, init, inspect, setup, unlock

ns = Collection(deploy.deploy, deploy.promote, deploy.rollback, cleanup.cleanup, cleanup.drain, inspect.check, inspect.status,
                inspect.history, inspect.logs, unlock.unlock, init.init, setup.setup)
