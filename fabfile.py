"""fab-bluegreen's tasks: `fab -l` lists them, `fab --help deploy` explains one. The code is in tasks/."""

from tasks import ns  # noqa: F401  (Fabric loads the collection named ns)
