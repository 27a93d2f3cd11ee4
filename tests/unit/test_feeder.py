"""The guard's feeder (tasks/host/feeder.py): fed while the link answers, the host given up once it
has not for guard_deadline, a sleeping fab not taken for a lost link; started and stopped by Trip."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from tasks.config.schema import HostSettings
from tasks.errors import Unreachable
from tasks.host import feeder as feeder_module
from tasks.host.feeder import Feeder, every
from tasks.host.remote import DryRunRemote, RecordingRemote, SshRemote
from tasks.host.trip import Trip
from tasks.shell import base, guard

from .test_guard_shell import S, TOKEN, setup, sh


class Host:
    """A feed's answers: 0 (fed), guard.GONE_EXIT, or silence (blocks until `cut`)."""

    def __init__(self, answer: int = 0):
        self.answer, self.fed, self.cut, self.lost = answer, 0, threading.Event(), []
        self.silent = False

    def feed(self) -> int:
        if self.silent:
            self.cut.wait(10)
            raise OSError("closed")
        self.fed += 1
        return self.answer

    def give_up(self, reason: str) -> None:
        self.lost.append((time.monotonic(), reason))
        self.cut.set()


def test_the_feeds_come_every_quarter_of_the_deadline_at_most_five_seconds():
    assert every(20) == 5 and every(60) == 5 and every(4) == 1


def test_a_live_link_is_fed_and_never_given_up_and_stop_ends_the_feeding():
    host = Host()
    f = Feeder(host.feed, host.give_up, deadline=0.5).start()
    time.sleep(1.1)  # past the deadline twice
    f.stop()
    fed = host.fed
    assert fed >= 4 and host.lost == [] and not f.watch.is_alive()
    time.sleep(0.3)
    assert host.fed == fed  # nothing after stop()


def test_a_link_that_stops_answering_is_given_up_once_after_the_deadline():
    host = Host()
    f = Feeder(host.feed, host.give_up, deadline=0.8).start()
    time.sleep(0.5)
    host.silent = True
    silent_since = time.monotonic()
    assert host.cut.wait(5)
    time.sleep(0.5)
    f.stop()
    (when, reason), = host.lost
    assert 0.5 <= when - silent_since <= 1.3  # the deadline, from the last answer (a feed each 0.2 s)
    assert "no answer from the host for 0.8 s (guard_deadline)" in reason


def test_no_guard_yet_is_fed_on_until_it_is_armed_and_a_guard_gone_ends_the_feeding():
    host = Host(answer=guard.GONE_EXIT)  # the arming has not run yet
    f = Feeder(host.feed, host.give_up, deadline=0.8).start()
    time.sleep(0.6)
    assert not f.gone and f.watch.is_alive()
    host.answer = 0  # armed and fed
    time.sleep(0.5)
    host.answer = guard.GONE_EXIT  # the guard acted (or fab unlock disarmed it)
    time.sleep(0.5)
    assert f.gone and not f.watch.is_alive() and host.lost == []
    f.stop()


def test_a_fab_asleep_past_the_deadline_is_no_lost_link(monkeypatch):
    """SIGSTOP or a suspended laptop: the clock jumps, the link is fine: the next feed is heard."""
    jump = [0.0]
    real = time.monotonic
    monkeypatch.setattr(feeder_module.time, "monotonic", lambda: real() + jump[0])
    host = Host()
    f = Feeder(host.feed, host.give_up, deadline=0.8).start()
    time.sleep(0.4)
    jump[0] = 100.0  # fab "slept" 100 s
    time.sleep(0.6)
    f.stop()
    assert host.lost == [] and host.fed >= 3


class FeedingRemote(RecordingRemote):
    feeds = True

    def __init__(self):
        super().__init__()
        self.pings: list[str] = []

    def ping(self, command: str, timeout: float) -> int:
        self.pings.append(command)
        return 0

    def give_up(self, reason: str) -> None:
        raise AssertionError(reason)


def test_arming_starts_the_feeder_and_it_stops_before_the_disarm_is_sent():
    s = HostSettings(name="pi5", ssh="pi5", guard_deadline=0.8)
    remote = FeedingRemote()
    trip = Trip(remote, s, TOKEN)
    trip.arm("true")
    assert trip.feeder is not None and trip.feeder.watch.is_alive()
    time.sleep(0.5)
    assert remote.pings and remote.pings[0] == guard.feed(s, TOKEN)
    feeding = trip.feeder

    def no_feeder_then(command: str):
        assert not feeding.watch.is_alive(), "the feeder still ran when the disarm was sent"
        return None

    remote.answer = no_feeder_then
    trip.disarm()
    trip.send("true")
    assert trip.feeder is None


@pytest.mark.parametrize("remote", [RecordingRemote(), DryRunRemote(RecordingRemote())])
def test_no_feeder_for_the_fake_host_or_a_dry_run(remote):
    trip = Trip(remote, HostSettings(name="pi5", ssh="pi5"), TOKEN)
    trip.arm("true")
    assert trip.feeder is None


def test_each_commands_heartbeat_gives_the_guard_deadline_only_not_the_commands_budget():
    remote = RecordingRemote()
    trip = Trip(remote, HostSettings(name="pi5", ssh="pi5"), TOKEN)
    trip.arm("true")
    trip.send(base.Command("sleep 1", 300))
    assert "$(( $(date +%s) + 20 ))" in remote.commands[-1] and "+ 320" not in remote.commands[-1]


def test_feeding_keeps_a_real_guard_waiting_and_once_it_is_gone_writes_nothing(tmp_path):
    app, _ = setup(tmp_path, grace=2)
    s1 = HostSettings(name="pi5", ssh="pi5", dir=S.dir, app=S.app, guard_deadline=2)
    for _ in range(6):  # 3 s in all: past the deadline
        assert sh(tmp_path, guard.feed(s1, TOKEN)).returncode == 0
        time.sleep(0.5)
    assert not (app / "undo.log").exists()
    assert guard.parse(sh(tmp_path, guard.disarm(S, TOKEN)).stdout) == guard.DISARMED  # fab unlock, say
    assert sh(tmp_path, guard.feed(s1, TOKEN)).returncode == guard.GONE_EXIT
    assert not (app / ".fab-bluegreen" / "app.guard.until").exists()


def test_a_connection_given_up_is_never_used_nor_reopened():
    remote = object.__new__(SshRemote)
    closed = []
    transport = SimpleNamespace(close=lambda: closed.append(True), is_active=lambda: False)

    def run(*args, **kwargs):
        raise AssertionError("a command was sent (or the connection reopened) after give_up")

    remote.name = "pi5"
    remote.conn = SimpleNamespace(transport=transport, is_connected=False, run=run)
    remote.give_up("no answer from the host for 20 s (guard_deadline): the link is gone")
    assert closed == [True]
    for call in (lambda: remote.run("true", 5), lambda: remote.stream("true", [], 5),
                 lambda: remote.ping("true", 5)):
        with pytest.raises(Unreachable, match="no answer from the host for 20 s"):
            call()
