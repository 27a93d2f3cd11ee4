"""fab-bluegreen's tasks: `fab -l` lists them, `fab --help deploy` explains one. The code is in tasks/."""

from fabric.main import program  # the program `fab` runs: it is loading this file

from tasks import ns  # noqa: F401  (Fabric loads the collection named ns)
from tasks.cmdline import strict

strict(program)  # a mistake on the command line: one line and exit code 2, like the tool's other usage errors
