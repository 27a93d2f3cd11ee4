"""fab-bluegreen: zero-downtime blue-green deploys of Docker Compose apps to small hosts."""

from invoke import Collection

from . import cli

ns = Collection(cli.deploy, cli.rollback, cli.cleanup, cli.drain, cli.check, cli.status, cli.history, cli.logs,
                cli.unlock)
