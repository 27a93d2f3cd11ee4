"""fab-bluegreen's tasks: `fab -l` lists them, `fab --help deploy` explains one. The code is in tasks/
(installed: the package fab_bluegreen and the command fab-bluegreen, which needs no fabfile).

Importing the tasks while `fab` loads this file makes a mistake on the command line one line and
exit code 2, like the tool's other usage errors (tasks/cmdline.py)."""

from tasks import ns  # noqa: F401  (Fabric loads the collection named ns)
