"""The deploy sequence, its order and its rollback, against a recording fake (no SSH).
The same behaviours are shown on real hosts in tests/e2e."""

import json
import re

import pytest

from tasks.host import cleanup
from tasks.host.deploy import Deploy
from tasks.host.drain import drain
from tasks.host.facts import find_live
from tasks.result import (CLEANED, DEPLOYED, DRAINED, FAILED, NOTHING, NOTHING_TO_DRAIN, PLANNED, REFUSED,
                          ROLLED_BACK)
from tasks.config.schema import HostSettings
from tasks.errors import StepFailed
from tasks.shell import compose, nginx

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", settle=0, prepare=("git pull --ff-only",))
ALL = ["web", "redis", "worker", "beat"]


def deploy(host: FakeHost, s: HostSettings = S):
    return Deploy(host.remote, s).run()


def test_first_deploy_goes_to_blue_and_switches_nginx():
    host = FakeHost()
    r = deploy(host)
    assert (r.outcome, r.from_color, r.to_color) == (DEPLOYED, None, "blue")
    assert host.state("blue") == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert "127.0.0.1:18001" in host.upstream
    assert json.loads(host.record)["live"] == "blue"


def test_blue_to_green_runs_the_steps_in_order():
    host = FakeHost(running={"blue": ALL})
    r = deploy(host)
    assert (r.outcome, r.from_color, r.to_color, r.tries) == (DEPLOYED, "blue", "green", 1)
    order = [host.index(x) for x in (
        "git pull --ff-only",
        "docker stop -t 30 idblueworker idbluebeat",
        "-p app-green -f compose.yml up -d --force-recreate --no-deps web redis",
        "i=0; while",
        "sudo -n sh -c",
        "sudo -n nginx -t",
        "sudo nginx -s reload",
        "-p app-green -f compose.yml up --no-start --force-recreate --no-deps worker beat",
    )]
    assert order == sorted(order)
    assert host.state("blue") == {"web": "running", "redis": "running", "worker": "exited", "beat": "exited"}
    assert "127.0.0.1:18002" in host.upstream
    rec = json.loads(host.record)
    assert (rec["live"], rec["previous"]) == ("green", "blue")
    assert rec["colors"]["green"]["images"]["web"] == "sha256:greenweb"
    assert any("app.history.jsonl" in c and '"result":"deployed"' in c for c in host.commands)


def the_old_background_stops_after_the_preflight_and_prepare(deploy_class: type[Deploy]) -> None:
    host = FakeHost(running={"blue": ALL})
    assert deploy_class(host.remote, S).run().outcome == DEPLOYED
    at = host.events.index
    stopped = [host.stopped("blue", x) for x in ("worker", "beat")]
    assert at(("check",)) < at(("prepare", "git pull --ff-only")) < min(stopped)
    assert max(stopped) < at(("start", "green", "web")) < at(("switch", nginx.upstream_text(S, 18002)))
    assert at(("switch", nginx.upstream_text(S, 18002))) < at(("start", "green", "worker"))
    assert host.state("blue") == {"web": "running", "redis": "running", "worker": "exited", "beat": "exited"}
    assert host.state("green") == dict.fromkeys(ALL, "running")


def test_the_old_background_stops_after_the_preflight_and_prepare():
    the_old_background_stops_after_the_preflight_and_prepare(Deploy)


@pytest.mark.parametrize("failing, step", [
    ("up -d --force-recreate --no-deps web redis", "start new front"),
    ("i=0; while", "health check"),
    ("sudo -n nginx -t", "switch"),
    ("up --no-start --force-recreate --no-deps worker beat", "start new background"),
    ("end=$((", "settle"),
])
def test_a_failed_step_rolls_back_and_old_colour_serves(failing, step):
    host = FakeHost(running={"blue": ALL}, fail=(failing,), record='{"live": "blue"}')
    r = deploy(host)
    assert (r.outcome, r.step) == (ROLLED_BACK, step)
    assert host.state("blue") == dict.fromkeys(ALL, "running")  # old background back
    assert "running" not in host.state("green").values()
    if step != "start new front":
        assert set(host.state("green").values()) == {"exited"}  # stopped, not removed: logs stay
    assert "127.0.0.1:18001" in host.upstream
    assert json.loads(host.record) == {"live": "blue"}  # the record as it was
    # beat never runs twice: the new colour is stopped before the old background starts again
    assert host.index("-p app-green -f compose.yml stop") < host.index("-p app-blue -f compose.yml start worker beat")


def untouched(host: FakeHost) -> None:
    """Nothing was stopped or started: the old colour runs whole, the new one was never made."""
    assert host.state("blue") == dict.fromkeys(ALL, "running") and host.state("green") == {}
    assert not [e for e in host.events if e[0] in ("stop", "start", "down", "switch", "record")]


def prepare_failure_changes_nothing(deploy_class: type[Deploy]) -> None:
    host = FakeHost(running={"blue": ALL}, fail=("git pull",))
    r = deploy_class(host.remote, S).run()
    assert r.outcome == ROLLED_BACK and r.step == "prepare" and "nothing was changed" in r.reason
    untouched(host)
    assert [e[0] for e in host.events] == ["lock", "check", "prepare", "unlock"]


def test_prepare_failure_changes_nothing():
    prepare_failure_changes_nothing(Deploy)


def test_failed_rollback_is_failed_and_says_what_is_left():
    host = FakeHost(running={"blue": ALL}, fail=("i=0; while", "start worker beat"))
    r = deploy(host)
    assert r.outcome == FAILED
    assert any("did not start again" in item for item in r.left)


def test_record_and_nginx_disagreeing_is_refused_before_anything_changes():
    host = FakeHost(running={"blue": ALL, "green": ["web"]}, record='{"live": "blue"}', upstream_port=18002)
    r = deploy(host)
    assert r.outcome == REFUSED and "record says blue is live" in r.reason and "18002 (green)" in r.reason
    # three round trips: lock (and start sampling); pre-flight and facts; unlock (and the samples)
    assert len(host.commands) == 3 and "mkdir .fab-bluegreen/app.lock" in host.commands[0]
    assert host.commands[1].startswith("say() {") and "rm -rf .fab-bluegreen/app.lock" in host.commands[2]
    assert not any("compose.yml" in c for c in (host.commands[0], host.commands[2]))


def test_live_colour_without_record_comes_from_nginx_when_its_web_runs():
    host = FakeHost(running={"blue": ALL, "green": ["web"]}, upstream_port=18002)
    r = deploy(host)
    assert (r.from_color, r.to_color) == ("green", "blue")


def a_failed_preflight_is_refused_before_anything_stops(deploy_class: type[Deploy]) -> None:
    host = FakeHost(running={"blue": ALL}, checks="fail sudo sudo -n asks for a password: allow passwordless sudo\n"
                                                  "warn memory 200 MiB available\n")
    r = deploy_class(host.remote, S).run()
    assert (r.outcome, r.step) == (REFUSED, "check") and "sudo: sudo -n asks" in r.reason
    assert r.warnings == ["memory: 200 MiB available"]
    untouched(host)
    assert [e[0] for e in host.events] == ["lock", "check", "unlock"]


def test_a_failed_preflight_is_refused_before_anything_stops():
    a_failed_preflight_is_refused_before_anything_stops(Deploy)


def test_cleanup_plans_then_removes_only_the_old_colour():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002)
    plan = cleanup.plan(host.remote, S)
    assert (plan.outcome, plan.from_color, plan.to_color) == (PLANNED, "blue", "green")
    assert not any(" down " in c for c in host.commands)
    done = cleanup.remove(host.remote, S, plan)
    assert done.outcome == CLEANED
    assert host.state("blue") == {} and host.state("green") == dict.fromkeys(ALL, "running")
    assert cleanup.plan(host.remote, S).outcome == NOTHING


def test_a_deploy_takes_few_round_trips():
    """At most 8 round trips, writes riding along with the next command: lock+sampling, check+facts,
    prepare, arm+stop, up+health, switch+record+verify, capped start+settle+facts+queues,
    record+history+disarm+unlock."""
    host = FakeHost(running={"blue": ALL})
    assert deploy(host).outcome == DEPLOYED
    assert len(host.commands) == 8
    assert host.guard_armed is False  # armed with the stop, disarmed at the end
    assert ": arm-guard;" in host.commands[3] and "docker stop -t 30 idblueworker idbluebeat" in host.commands[3]
    assert "up -d --force-recreate --no-deps web redis" in host.commands[4] and "i=0; while" in host.commands[4]
    assert "up --no-start --force-recreate --no-deps worker beat" in host.commands[6] and "end=$((" in host.commands[6]


def test_shared_services_start_before_anything_stops_and_are_never_stopped():
    s = HostSettings(name="pi5", ssh="pi5", settle=0, front=("web",), shared=("broker",))
    host = FakeHost(running={"blue": ["web", "worker", "beat"]})
    r = deploy(host, s)
    assert r.outcome == DEPLOYED
    up_shared = host.index("-p app-shared -f compose.yml up -d --no-recreate --no-deps broker")
    assert up_shared < host.index("docker stop -t 30 idblueworker idbluebeat") < host.index("-p app-green -f compose.yml up")
    assert not any(re.search(r"-p app-shared -f compose.yml (stop|down|rm|kill|restart)", c) for c in host.commands)
    # no broker per colour: nothing is counted
    assert not any("redis-cli" in c for c in host.commands)


def test_a_worker_killed_at_the_end_of_its_grace_is_a_warning():
    host = FakeHost(running={"blue": ALL}, exit_codes={"worker": 137, "beat": 0})
    r = deploy(host)
    assert r.outcome == DEPLOYED
    assert [w for w in r.warnings if "killed" in w] == [
        "blue's worker was killed after stop_timeout (30 s) instead of stopping by itself: tasks it was running "
        "may be lost (raise stop_timeout above the longest task)"]


def test_tasks_left_in_the_old_broker_are_counted_after_the_switch():
    host = FakeHost(running={"blue": ALL}, queued={"celery": 3, "unacked": 1})
    r = deploy(host)
    assert r.outcome == DEPLOYED
    assert any("3 message(s) wait in blue's redis (celery: 3)" in w and "fab drain --host pi5" in w
               for w in r.warnings)
    assert any("holds 1 unacknowledged message(s) (unacked): held by a worker that was killed" in w for w in r.warnings)
    count = host.index("'LLEN celery'")
    assert count > host.index("sudo nginx -s reload")  # after the switch, riding with the settle check
    assert len(host.commands) == 8


def test_cleanup_refuses_while_tasks_wait_and_drain_runs_them_with_workers_only():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 2})
    host.containers[("blue", "worker")] = host.containers[("blue", "beat")] = "exited"
    plan = cleanup.plan(host.remote, S)
    assert plan.outcome == REFUSED and "2 message(s) wait in blue's redis (celery: 2)" in plan.reason
    assert "fab drain --host pi5" in plan.reason
    assert not any(" down " in c for c in host.commands)

    r = drain(host.remote, S)
    assert (r.outcome, r.from_color, r.to_color, r.queued) == (DRAINED, "blue", "green", {"celery": 2})
    start = host.index("-p app-blue -f compose.yml start worker")
    assert not any("start worker beat" in c or " beat" in c.split("compose.yml", 1)[-1].split(";")[0]
                   for c in host.commands[start:start + 1])
    assert host.index("-p app-blue -f compose.yml stop -t 30 worker") > start
    assert host.state("blue")["worker"] == "exited" and host.state("blue")["beat"] == "exited"
    assert any("app.history.jsonl" in c and '"action":"drain"' in c for c in host.commands)
    assert cleanup.plan(host.remote, S).outcome == PLANNED
    assert drain(host.remote, S).outcome == NOTHING_TO_DRAIN


def test_a_drain_that_does_not_empty_the_queue_fails_and_says_what_next():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 5})
    host.containers[("blue", "worker")] = host.containers[("blue", "beat")] = "exited"
    host.workers_run_queue = False
    host.fail.append("empty=0; while")  # the wait gives up (drain_timeout)
    r = drain(host.remote, S)
    assert r.outcome == FAILED and "5 still wait (celery: 5) after 600 s (drain_timeout)" in r.reason
    assert "fab logs --host pi5 --colour blue --service worker" in r.reason
    assert host.state("blue")["worker"] == "exited"  # stopped again all the same
    assert cleanup.plan(host.remote, S).outcome == REFUSED


def test_a_shared_service_also_in_front_is_a_check_warning():
    from tasks.host.check import preflight
    s = HostSettings(name="pi5", ssh="pi5", shared=("redis",))  # front is still web, redis
    host = FakeHost(running={"blue": ALL})
    checked = preflight(host.remote, s)
    assert ("warn", "shared", "redis listed in shared and also in front or background: it runs once in "
            "app-shared and again in each colour (remove it from one of the lists)") in checked.items
    assert checked.ok  # a warning, not a failure
    assert any(w.startswith("shared: redis listed in shared") for w in deploy(FakeHost(running={"blue": ALL}), s).warnings)


def test_cleanup_of_a_colour_whose_broker_is_stopped_proceeds_with_a_warning():
    """The colour of a failed deploy: its rollback stopped it, redis included. Nothing can be
    counted; a redis that saves to its volume keeps its messages there (volumes stay)."""
    host = FakeHost(running={"green": ALL, "blue": ALL}, upstream_port=18002, queued={"celery": 7})
    for service in ALL:
        host.containers[("blue", service)] = "exited"
    plan = cleanup.plan(host.remote, S)
    assert plan.outcome == PLANNED and plan.from_color == "blue"
    assert plan.warnings == ["blue's redis is exited: its queues were not counted (a redis that saves to its "
                             "volume keeps them there; volumes stay)"]
    assert drain(host.remote, S).outcome == REFUSED  # nothing to drain with: it says to start redis first


def test_every_command_after_arming_carries_a_heartbeat_and_the_disarm_rides_with_the_last():
    host = FakeHost(running={"blue": ALL})
    assert deploy(host).outcome == DEPLOYED
    armed = next(i for i, c in enumerate(host.commands) if ": arm-guard;" in c)
    # the stop (with the arming), up+health, switch, capped start+settle: one heartbeat each
    assert host.heartbeats == len(host.commands) - armed - 1 == 4
    assert "@@fbg:$fbg_guard" in host.commands[-1] and host.guard_armed is False


def test_a_guard_that_acted_mid_deploy_stops_the_next_step_and_the_deploy_is_failed():
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}')
    host.guard_acts_after = "i=0; while"  # e.g. the laptop slept past the deadline during the health check
    r = deploy(host)
    assert r.outcome == FAILED and "the guard put the host back" in r.reason and r.step == "switch"
    assert "the guard is no longer armed" in r.reason  # the switch's heartbeat stopped it from running
    assert "127.0.0.1:18001" in host.upstream


def test_a_guard_that_acted_after_the_last_step_leaves_the_record_alone_and_the_deploy_failed():
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}')
    host.guard_acts_after = "end=$(("  # after the settle check, before fab's last command
    r = deploy(host)
    assert r.outcome == FAILED and "the guard put the host back" in r.reason
    last = host.commands[-1]
    confirmed, acted = last.split('[ "$fbg_guard" != guard-acted ]; then ', 1)[1].rsplit("; else ", 1)
    assert "app.json.XXXXXX" in confirmed and "app.lock" in confirmed  # what a confirmed deploy writes
    assert '"result":"failed"' in acted and "app.json.XXXXXX" not in acted and "app.lock" not in acted


def an_unreadable_upstream_file_is_refused_before_anything_stops(deploy_class: type[Deploy]) -> None:
    host = FakeHost(running={"blue": ALL})
    host.upstream = "@@fbg:upstream-unreadable"
    r = deploy_class(host.remote, S).run()
    assert r.outcome == REFUSED and "cannot be read, not even through sudo -n" in r.reason
    untouched(host)
    assert [e[0] for e in host.events] == ["lock", "check", "unlock"]


def test_an_upstream_file_that_cannot_be_read_is_refused_before_anything_stops():
    an_unreadable_upstream_file_is_refused_before_anything_stops(Deploy)


def test_the_switch_reason_is_the_tools_own_sentence_not_nginx_notices():
    reason = "http://127.0.0.1/health/ did not answer 2xx/3xx through nginx after the switch (HTTP codes: 502)"
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}')
    answer = host.answer
    host.remote.answer = lambda c: ((7, f"@@fbg:why {reason}\nsignal process started\n")
                                    if "did not answer 2xx/3xx" in c and "sudo -n nginx -t" in c and
                                    "127.0.0.1:18002" in c else answer(c))
    r = deploy(host)
    assert (r.outcome, r.step) == (ROLLED_BACK, "switch")
    assert r.reason == f"the switch failed: {reason}"


def test_switching_back_skips_the_reload_while_nginx_still_runs_the_workers_it_ran_before():
    host = FakeHost(running={"blue": ALL}, fail=("up --no-start",), record='{"live": "blue"}')
    host.nginx_workers = "812 813"
    r = deploy(host)
    assert r.outcome == ROLLED_BACK
    back = next(c for c in reversed(host.commands) if "nginx never took up" in c)  # the rollback's (not the guard's)
    assert "server 127.0.0.1:18001;" in back and ": arm-guard" not in back
    assert "if [ \"$(fbg_workers)\" = '812 813' ]; then echo nginx never took up the new upstream" in back


# --- the checks above catch a deploy that stops the old workers too early ----------------------

class StopsBeforePrepare(Deploy):
    """Wrong on purpose: stops the old background before prepare (a failed prepare leaves it stopped)."""

    def run_prepare(self) -> None:
        self.stop_old_background()
        super().run_prepare()


class StopsBeforePrepareThenRestarts(StopsBeforePrepare):
    """Wrong on purpose, and harder to see: when prepare fails, it starts the old background again, so
    the host ends as it began, but the workers were down while prepare ran."""

    def run_prepare(self) -> None:
        try:
            super().run_prepare()
        except StepFailed:
            self.send(compose.start(self.s, self.live, self.s.background))
            raise


class StopsBeforePreflight(Deploy):
    """Wrong on purpose: stops the old background before the pre-flight (a refused host loses its workers)."""

    def check_host(self) -> None:
        self.facts = self.read_facts()
        self.live = find_live(self.s, self.facts)
        self.stop_old_background()
        super().check_host()


@pytest.mark.parametrize("check, early", [
    (the_old_background_stops_after_the_preflight_and_prepare, StopsBeforePrepare),
    (the_old_background_stops_after_the_preflight_and_prepare, StopsBeforePreflight),
    (prepare_failure_changes_nothing, StopsBeforePrepare),
    (prepare_failure_changes_nothing, StopsBeforePrepareThenRestarts),
    (prepare_failure_changes_nothing, StopsBeforePreflight),
    (a_failed_preflight_is_refused_before_anything_stops, StopsBeforePreflight),
    (an_unreadable_upstream_file_is_refused_before_anything_stops, StopsBeforePreflight),
], ids=lambda x: x.__name__)
def test_each_check_fails_against_a_deploy_that_stops_the_old_workers_too_early(check, early):
    with pytest.raises(AssertionError) as failed:
        check(early)
    seen = str(failed.traceback[-1].statement)  # failed on what the host saw, not on the outcome
    assert any(x in seen for x in ("host.state(", "host.events", "min(stopped)")), seen
