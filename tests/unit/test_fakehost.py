"""The fake host refuses what it does not know, as Invoke's MockContext does: a test cannot pass on a
command the fake host would have answered `(0, "")` without playing it."""

import io

import pytest
from rich.console import Console

from tasks.config.schema import HostSettings
from tasks.fleet import Fleet
from tasks.host.deploy import Deploy
from tasks.report import Progress
from tasks.shell import compose

from .fakehost import FakeHost, UnknownCommand

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]


@pytest.mark.parametrize("command", [
    "docker stpo -t 30 idblueworker",  # misspelled
    'cd "$HOME"/app && DEPLOY_COLOR=blue DEPLOY_PORT=18001 docker compose -p app-blue -f compose.yml restart worker',
    "rm -rf /srv/app",
])
def test_an_unknown_command_raises_naming_it(command):
    host = FakeHost(running={"blue": ALL})
    with pytest.raises(UnknownCommand, match="does not know") as refused:
        host.remote.run(command, 10)
    assert command in str(refused.value)


def test_what_rides_along_is_not_enough_to_make_a_command_known():
    """A heartbeat in front of an unknown command: the command is still refused."""
    host = FakeHost(running={"blue": ALL})
    deploy = Deploy(host.remote, S)
    deploy.trip.armed = True
    with pytest.raises(UnknownCommand, match="frobnicate"):
        deploy.trip.send("frobnicate --all")


class StopsWithATypo(Deploy):
    def stop_old_background(self) -> None:
        self.at("stop old background")
        self.check(compose.stop(self.s, self.live, self.s.background).replace(" stop ", " stpo "), "could not stop")


def test_a_deploy_sending_an_unknown_command_fails_its_test_even_through_the_fleet():
    """Not an Exception: the fleet would make a host's Exception its `failed` row."""
    host = FakeHost(running={"blue": ALL})
    fleet = Fleet(Progress(Console(file=io.StringIO())), connect=lambda s: host.remote)
    with pytest.raises(UnknownCommand, match="compose stpo"):
        fleet.run([S], "deploy", lambda remote, s, say: StopsWithATypo(remote, s, say).run())
