"""State files that are valid JSON but not what the tool wrote (the record, a history line, the
lock's info): refused for that host with a line naming the file, nothing changed there; the other
hosts carry on and the table is printed. And the fleet's safety net for a bug on one host."""

import io
import json
import re
import shlex

import pytest
from rich.console import Console

from tasks import report
from tasks.config.schema import HostSettings
from tasks.errors import Locked, Refused
from tasks.fleet import Fleet
from tasks.host import cleanup, inspect, lock
from tasks.host.deploy import Deploy, Rollback
from tasks.host.drain import drain
from tasks.host.facts import find_live, parse
from tasks.host.remote import RecordingRemote
from tasks.result import CLEANED, DEPLOYED, DRAINED, FAILED, PLANNED, REFUSED, ROLLED_BACK, HostResult
from tasks.shell import guard, record

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]
RECORD_FILE = "~/app/.fab-bluegreen/app.json"
HISTORY_FILE = "~/app/.fab-bluegreen/app.history.jsonl"
LOCK_FILE = "~/app/.fab-bluegreen/app.lock/info"

BAD_RECORDS = [  # (the file's text, what the reason says is wrong)
    ("[1]", "is a list, not a JSON object"),
    ('"x"', "is a string, not a JSON object"),
    ("null", "is null, not a JSON object"),
    ('{"colors": "x"}', "has colors as a string, not an object"),
    ('{"live": 3}', "has live 3, not blue, green or null"),
    ('{"live": "red"}', 'has live "red", not blue, green or null'),
    ('{"live": "blue", "previous": [1]}', "has previous [1], not blue, green or null"),
    ('{"live": "blue", "since": 5}', "has since as a number, not a string"),
    ('{"colors": {"blue": []}}', "has colors.blue as a list, not an object"),
    ('{"colors": {"blue": {"images": ["sha256:1"]}}}', "has colors.blue.images as a list, not an object"),
    ('{"colors": {"blue": {"containers": {"web": 7}}}}', "has colors.blue.containers.web as a number, not a string"),
    ('{"colors": {"blue": {"commit": {"x": 1}}}}', "has colors.blue.commit as an object, not a string"),
]
BAD_HISTORY = [
    ("[1]", "is a list, not a JSON object"),
    ('"x"', "is a string, not a JSON object"),
    ('{"action": "deploy", "time": 3}', "has time as a number, not a string"),
    ('{"action": "deploy", "from": 3}', "has from 3, not blue, green or null"),
    ('{"action": "deploy", "versions": [1]}', "has versions as a list, not an object"),
]
BAD_LOCKS = [
    ('"x"', "is a string, not a JSON object"),
    ("[1]", "is a list, not a JSON object"),
    ('{"who": ["a"], "task": "deploy"}', "has who as a list, not a string"),
    ('{"who": "a", "since": "yesterday"}', 'has since "yesterday", not a number of seconds'),
]


def record_refusal(what: str) -> str:
    return (f"the record {RECORD_FILE} {what}: fix or remove it (fab-bluegreen then finds the live colour "
            "from nginx and containers)")


def history_refusal(what: str) -> str:
    return f"the last line of {HISTORY_FILE} {what}: fix or remove that line"


def lock_refusal(what: str, host: str = "pi5") -> str:
    return f"the lock {LOCK_FILE} {what}: if no run holds the lock, remove it with fab unlock --host {host}"


def facts_text(record_text: str = "", history: str = "") -> str:
    return (f"@@fbg:record\n{record_text}\n@@fbg:upstream\nupstream app_backend {{ server 127.0.0.1:18001; }}\n"
            f"@@fbg:git\n\n@@fbg:compose\nyes\n@@fbg:history\n{history}\n@@fbg:containers\n"
            "app-blue web running 0 sha256:1111 c1 0\n")


CHANGES = re.compile(r"-f compose\.yml (up|start|stop|down|rm|kill|restart)\b|>> \.fab-bluegreen/app\.history\.jsonl\)|"
                     r"app\.json\.XXXXXX|sudo -n sh -c|nginx -s reload|: arm-guard;")


def unchanged(host: FakeHost, before: dict) -> None:
    """Nothing changed on the host: three round trips (lock, pre-flight and facts, unlock), none that writes."""
    assert snapshot(host) == before
    assert len(host.commands) == 3
    assert not any(CHANGES.search(c) for c in host.commands[1:])  # [0]: the lock (and the sampler)
    assert "rm -rf .fab-bluegreen/app.lock" in host.commands[-1]  # the lock freed


def snapshot(host: FakeHost) -> dict:
    return {"record": host.record, "upstream": host.upstream, "containers": dict(host.containers)}


def quiet_progress() -> report.Progress:
    return report.Progress(Console(file=io.StringIO()))


def rendered(table) -> str:
    console = Console(record=True, width=400, file=io.StringIO())
    console.print(table)
    return console.export_text()


# --- the parsing edge ------------------------------------------------------------------------

@pytest.mark.parametrize("text, what", BAD_RECORDS)
def test_a_record_not_as_written_is_left_out_and_refused_naming_the_file(text, what):
    facts = parse(facts_text(text))
    assert facts.record is None  # past the parser the record always has the shape record.py writes
    with pytest.raises(Refused) as refused:
        find_live(S, facts)
    assert str(refused.value) == record_refusal(what)


def test_a_record_that_is_not_json_keeps_its_message():
    with pytest.raises(Refused) as refused:
        find_live(S, parse(facts_text('{"live": "bl')))
    assert str(refused.value) == record_refusal("is not valid JSON")


@pytest.mark.parametrize("text", [
    '{"live": "blue"}',  # a record by hand, or of an older version
    '{"live": null, "previous": null, "colors": {}}',
    '{"app": "app", "live": "blue", "since": "2026-01-01T00:00:00+00:00", "previous": "green", "colors": '
    '{"blue": {"images": {"web": "sha256:1"}, "commit": null, "containers": {"web": "c1"}, "deployed": "t"}}}',
    '{"live": "blue", "colors": {"blue": {"images": {}, "commit": "abc", "deployed": "t"}}, "later": [1]}',
])
def test_records_of_the_tools_shape_are_read(text):
    facts = parse(facts_text(text))
    assert facts.bad == {} and facts.record.to_json() == json.loads(text)
    assert find_live(S, facts) == "blue"


@pytest.mark.parametrize("line, what", BAD_HISTORY)
def test_a_last_history_line_not_as_written_is_left_out_and_refused(line, what):
    facts = parse(facts_text('{"live": "blue"}', history=line))
    assert facts.last is None
    with pytest.raises(Refused) as refused:
        find_live(S, facts)
    assert str(refused.value) == history_refusal(what)


def test_a_half_written_history_line_is_ignored_as_before():
    facts = parse(facts_text('{"live": "blue"}', history='{"action": "depl'))
    assert facts.last is None and facts.bad == {} and find_live(S, facts) == "blue"


@pytest.mark.parametrize("info, what", BAD_LOCKS)
def test_a_lock_info_not_as_written_is_refused_naming_the_file(info, what):
    remote = RecordingRemote(answer=lambda command: (3, f"held 1042 1000\n{info}\n"))
    with pytest.raises(Refused) as refused:
        lock.take(remote, S, "deploy", "tok")
    assert str(refused.value) == lock_refusal(what)
    assert lock.holder(f"held 1042 1000\n{info}\n", S) == f"a lock not taken by fab-bluegreen for 42 s (the lock {LOCK_FILE} {what})"


def test_a_lock_of_the_tools_shape_or_half_written_is_still_locked():
    remote = RecordingRemote(answer=lambda command: (3, 'held 1042 1000\n{"who": "alice@laptop", "task": "deploy", '
                                                        '"when": "t", "message": "fix", "token": "x", "since": 1000}\n'))
    with pytest.raises(Locked, match=r"locked by alice@laptop \(deploy, 'fix', since t\) for 42 s"):
        lock.take(remote, S, "deploy", "tok")
    half = RecordingRemote(answer=lambda command: (3, "held 1042 1000\n"))  # mkdir done, info not yet written
    with pytest.raises(Locked, match="locked by an unreadable lock for 42 s"):
        lock.take(half, S, "deploy", "tok")


def test_what_the_tool_writes_passes_its_own_checks():
    """The validators are not stricter than the writers: record, history lines, lock info."""
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue", "previous": null}')
    assert Deploy(host.remote, S).run().outcome == DEPLOYED
    failed = FakeHost(running={"blue": ALL}, fail=("ids='idgreenworker idgreenbeat'",))
    assert Deploy(failed.remote, S).run().outcome == ROLLED_BACK
    cleaned = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002)
    assert cleanup.remove(cleaned.remote, S, cleanup.plan(cleaned.remote, S)).outcome == CLEANED
    drained = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 1})
    drained.containers[("blue", "worker")] = "exited"
    assert drain(drained.remote, S).outcome == DRAINED
    assert record.record_problem(json.loads(host.record)) is None
    assert record.record_problem(json.loads(cleaned.record)) is None
    commands = host.commands + failed.commands + cleaned.commands + drained.commands
    lines = [shlex.split(m)[0] for c in commands
             for m in re.findall(r"printf '%s\\n' ('(?:[^']|'\"'\"')*') >> \.fab-bluegreen/app\.history\.jsonl", c)]
    assert {json.loads(line)["action"] for line in lines} == {"deploy", "cleanup", "drain"}
    assert all(record.history_problem(json.loads(line)) is None for line in lines)
    guard_line = record.history_line("guard", "pi5", "rolled back", time="@@NOW@@", token="12345678", reason="r")
    assert record.history_problem(json.loads(guard_line)) is None
    recovered = re.search(r"printf '%s\\n' ('(?:[^']|'\"'\"')*') \| sed", guard.recover(S, "deploy")).group(1)
    assert record.history_problem(json.loads(shlex.split(recovered)[0])) is None  # the next run's put-back
    infos = [shlex.split(m)[0] for m in re.findall(r"printf '%s\\n' ('(?:[^']|'\"'\"')*') > \.fab-bluegreen/app\.lock/info",
                                                   host.commands[0])]
    assert len(infos) == 1 and record.lock_problem(json.loads(infos[0])) is None


# --- the tasks on a host with such a file: refused, nothing changed ----------------------------

@pytest.mark.parametrize("text, what", BAD_RECORDS)
def test_deploy_refuses_a_bad_record_and_changes_nothing(text, what):
    host = FakeHost(running={"blue": ALL}, record=text)
    before = snapshot(host)
    r = Deploy(host.remote, S).run()
    assert (r.outcome, r.step, r.reason) == (REFUSED, "live colour", record_refusal(what))
    unchanged(host, before)


@pytest.mark.parametrize("line, what", BAD_HISTORY)
def test_deploy_refuses_a_bad_last_history_line_and_changes_nothing(line, what):
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}', history=f'{{"action": "deploy"}}\n{line}\n')
    before = snapshot(host)
    r = Deploy(host.remote, S).run()
    assert (r.outcome, r.step, r.reason) == (REFUSED, "live colour", history_refusal(what))
    unchanged(host, before)


@pytest.mark.parametrize("info, what", BAD_LOCKS)
def test_deploy_refuses_a_bad_lock_info_and_changes_nothing(info, what):
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}', lock=info)
    before = snapshot(host)
    r = Deploy(host.remote, S).run()
    assert (r.outcome, r.step, r.reason) == (REFUSED, "lock", lock_refusal(what))
    assert snapshot(host) == before and len(host.commands) == 1  # the lock was not taken: nothing more sent


def test_rollback_refuses_a_bad_record():
    host = FakeHost(running={"blue": ALL, "green": ALL}, record='{"live": "green", "previous": "blue", '
                                                                '"colors": {"blue": []}}', upstream_port=18002)
    before = snapshot(host)
    r = Rollback(host.remote, S).run()
    assert (r.outcome, r.reason) == (REFUSED, record_refusal("has colors.blue as a list, not an object"))
    unchanged(host, before)


@pytest.mark.parametrize("text, what", BAD_RECORDS[:5])
def test_cleanup_refuses_a_bad_record_at_the_plan_and_at_the_removal(text, what):
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, record=text)
    plan = cleanup.plan(host.remote, S)
    assert (plan.outcome, plan.reason) == (REFUSED, record_refusal(what))
    # planned on a good record, which then went bad before the removal
    good = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, record='{"live": "green"}')
    plan = cleanup.plan(good.remote, S)
    assert plan.outcome == PLANNED
    good.record = text
    done = cleanup.remove(good.remote, S, plan)
    assert (done.outcome, done.reason) == (REFUSED, record_refusal(what))
    assert not any(CHANGES.search(c) for c in good.commands[1:])
    assert good.record == text and set(good.state("blue")) == {"web", "redis"}


def test_cleanup_refuses_a_bad_lock_info():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002)
    plan = cleanup.plan(host.remote, S)
    host.lock = '"x"'
    done = cleanup.remove(host.remote, S, plan)
    assert (done.outcome, done.step, done.reason) == (REFUSED, "lock", lock_refusal("is a string, not a JSON object"))
    assert set(host.state("blue")) == {"web", "redis"}


@pytest.mark.parametrize("text, history, why", [
    ("[1]", "", record_refusal("is a list, not a JSON object")),
    ('{"live": "green"}', "[1]", history_refusal("is a list, not a JSON object")),
])
def test_drain_refuses_a_bad_record_or_history_line(text, history, why):
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 2},
                    record=text, history=history)
    host.containers[("blue", "worker")] = "exited"
    r = drain(host.remote, S)
    assert (r.outcome, r.reason) == (REFUSED, why)
    assert host.state("blue")["worker"] == "exited" and host.queued["celery"] == 2
    assert not any(CHANGES.search(c) for c in host.commands[1:])


def test_drain_refuses_a_bad_lock_info():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 2},
                    lock="[1]")
    r = drain(host.remote, S)
    assert (r.outcome, r.reason) == (REFUSED, lock_refusal("is a list, not a JSON object"))
    assert len(host.commands) == 1


# --- fab status and fab history show such a host as a row with the reason ----------------------

def test_status_shows_a_bad_record_as_the_reason_in_its_row():
    host = FakeHost(running={"blue": ALL}, record='{"colors": "x"}')
    row = inspect.status(host.remote, S)
    assert row.ok and row.live is None and row.error == record_refusal("has colors as a string, not an object")
    assert "blue" in row.colors
    assert "has colors as a string, not an object" in rendered(report.status_table([row]))


def test_status_shows_a_bad_history_guard_line_and_lock_in_their_columns():
    guard = '{"action":"guard","time":5}'
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue", "since": "2026-01-01T10:00:00+00:00"}',
                    history=f"{guard}\n[1]\n", lock='"x"')
    row = inspect.status(host.remote, S)
    assert (row.live, row.since, row.error) == ("blue", "2026-01-01T10:00:00+00:00", "")  # the live colour is still told
    assert row.last == history_refusal("is a list, not a JSON object")
    assert row.guard == f"the last guard line of {HISTORY_FILE} has time as a number, not a string: fix or remove that line"
    assert row.lock == f"a lock not taken by fab-bluegreen for 42 s (the lock {LOCK_FILE} is a string, not a JSON object)"
    text = rendered(report.status_table([row]))
    assert "is a list, not a JSON object" in text and "has time as a number" in text and "2026-01-01 10:00" in text


def test_history_shows_the_valid_lines_and_counts_the_others_in_a_row_with_the_first_reason():
    good = record.history_line("deploy", "pi5", "deployed", **{"from": "blue", "to": "green", "versions": {"blue": "x"}})
    host = FakeHost(history=f'{good}\n[1]\n{{"time": 3}}\n{{"action": "depl\n')
    rows = inspect.history(host.remote, S, 20)
    assert rows[0] == json.loads(good)
    assert rows[1:] == [{"action": "?", "reason": f"skipped 3 lines of {HISTORY_FILE} not as fab-bluegreen writes "
                                                  "them (the first is a list, not a JSON object)"}]
    text = rendered(report.history_table([("pi5", rows)]))
    assert "is a list, not a JSON object" in text and "deployed" in text


# --- many hosts: one host's bad file, or a bug, is that host's row ------------------------------

def two_hosts():
    return [HostSettings(name=name, ssh=name, settle=0) for name in ("h1", "h2")]


def test_a_fleet_with_a_bad_record_on_one_host_deploys_the_other_and_prints_the_table():
    hosts = {"h1": FakeHost(running={"blue": ALL}, record="[1]"), "h2": FakeHost(running={"blue": ALL})}
    before = snapshot(hosts["h1"])
    fleet = Fleet(quiet_progress(), connect=lambda s: hosts[s.name].remote)
    results = fleet.run(two_hosts(), "deploy", lambda r, s, say: Deploy(r, s, say).run())
    assert [(r.host, r.outcome) for r in results] == [("h1", REFUSED), ("h2", DEPLOYED)]
    assert results[0].reason == record_refusal("is a list, not a JSON object")
    unchanged(hosts["h1"], before)
    assert json.loads(hosts["h2"].record)["live"] == "green"
    text = rendered(report.deploy_table(results))
    assert "refused" in text and "deployed" in text and "is a list, not a JSON object" in text


def test_a_bug_on_one_host_is_that_hosts_failed_row_and_the_others_carry_on():
    hosts = {"h1": FakeHost(running={"blue": ALL}), "h2": FakeHost(running={"blue": ALL})}

    def job(remote, s, say):
        if s.name == "h1":
            raise AttributeError("'list' object has no attribute 'get'\n(second line)")
        return Deploy(remote, s, say).run()

    fleet = Fleet(quiet_progress(), connect=lambda s: hosts[s.name].remote)
    results = fleet.run(two_hosts(), "deploy", job)
    assert [(r.host, r.outcome) for r in results] == [("h1", FAILED), ("h2", DEPLOYED)]
    assert results[0].reason == ("internal error: AttributeError: 'list' object has no attribute 'get' (second line) "
                                 "(please report it)")
    assert "internal error: AttributeError" in rendered(report.deploy_table(results))


def test_a_bug_while_connecting_is_that_hosts_row_too():
    def connect(s):
        if s.name == "h1":
            raise ValueError("bad port")
        return FakeHost(running={"blue": ALL}).remote

    results = Fleet(quiet_progress(), connect=connect).run(
        two_hosts(), "deploy", lambda r, s, say: HostResult(host=s.name, action="deploy", outcome=DEPLOYED))
    assert [(r.host, r.outcome, r.reason) for r in results] == [
        ("h1", FAILED, "internal error: ValueError: bad port (please report it)"), ("h2", DEPLOYED, "")]


def test_a_bug_in_a_look_at_one_host_is_that_hosts_row():
    hosts = {"h1": FakeHost(running={"blue": ALL}), "h2": FakeHost(running={"blue": ALL})}

    def look(remote, s):
        if s.name == "h1":
            raise KeyError("since")
        return inspect.status(remote, s)

    rows = Fleet(quiet_progress(), connect=lambda s: hosts[s.name].remote).run_plain(
        two_hosts(), look, lambda host, error: inspect.HostStatus(host, False, error))
    assert [(r.host, r.ok) for r in rows] == [("h1", False), ("h2", True)]
    assert rows[0].error == "internal error: KeyError: 'since' (please report it)"
    assert "internal error: KeyError" in rendered(report.status_table(rows))


# --- hostile state files: too deep, too long a number, a label with a space (issue 19, item 6) ------

DEEP = "[" * 50_000  # json.loads: RecursionError
LONG_NUMBER = '{"live": "blue", "since": ' + "1" * 5000 + "}"  # json.loads: ValueError (int digits limit)


@pytest.mark.parametrize("text", [DEEP, LONG_NUMBER])
def test_a_hostile_record_refuses_the_host_naming_the_file_and_changes_nothing(text):
    host = FakeHost(running={"blue": ALL}, record=text)
    before = snapshot(host)
    r = Deploy(host.remote, S).run()
    assert (r.outcome, r.step, r.reason) == (REFUSED, "live colour", record_refusal("is not valid JSON"))
    unchanged(host, before)
    assert inspect.status(host.remote, S).error == record_refusal("is not valid JSON")


@pytest.mark.parametrize("line", [DEEP, '{"action": "deploy", "since": ' + "1" * 5000 + "}"])
def test_a_hostile_last_history_line_refuses_the_host_naming_the_file(line):
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}', history=f'{{"action": "deploy"}}\n{line}\n')
    before = snapshot(host)
    r = Deploy(host.remote, S).run()
    assert (r.outcome, r.reason) == (REFUSED, history_refusal("is not JSON fab-bluegreen can read"))
    unchanged(host, before)


def test_history_shows_the_valid_lines_around_hostile_ones_and_counts_those():
    first = record.history_line("deploy", "pi5", "deployed", **{"from": "blue", "to": "green"})
    last = record.history_line("rollback", "pi5", "rolled back", **{"from": "green", "to": "blue"})
    host = FakeHost(history=f"{first}\n{DEEP}\n{LONG_NUMBER}\n{last}\n")
    rows = inspect.history(host.remote, S, 20)
    assert rows == [json.loads(first), json.loads(last),
                    {"action": "?", "reason": f"skipped 2 lines of {HISTORY_FILE} not as fab-bluegreen writes them "
                                              "(the first is not valid JSON)"}]


def test_a_lock_whose_info_is_hostile_is_shown_as_unreadable_and_fab_unlock_removes_it(tmp_path, monkeypatch):
    from invoke import Context

    from tasks import fleet
    from tasks.unlock import unlock

    assert lock.holder(f"held 1042 1000\n{DEEP}\n", S) == "an unreadable lock for 42 s"
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}', lock=LONG_NUMBER)
    assert inspect.status(host.remote, S).lock == "an unreadable lock for 42 s"
    removed = []

    def answer(command: str):
        if "rm -rf" in command:
            removed.append(command)
            return 0, "removed\n"
        return 0, f"held 1042 1000\n{DEEP}\n\n@@fbg:guard\n@@fbg:until\n@@fbg:plan\n"

    monkeypatch.setattr(fleet, "Fleet", lambda *a, **k: Fleet(*a, connect=lambda s: RecordingRemote(answer=answer), **k))
    (tmp_path / "hosts.toml").write_text('[hosts.h1]\nssh = "h1"\n')
    unlock(Context(), host=["h1"], hosts_file=str(tmp_path / "hosts.toml"), yes=True)  # no Exit: exit code 0
    assert len(removed) == 1 and "stat -c %Y" in removed[0]  # a lock without a token: removed if its age is the same


def test_a_container_whose_project_label_holds_a_space_is_not_ours_and_breaks_nothing():
    text = facts_text('{"live": "blue"}') + "my app-blue web running 0 sha256:2222 c2 0\n"
    facts = parse(text)
    assert [c.project for c in facts.containers] == ["app-blue"] and find_live(S, facts) == "blue"


# --- the history is read from its end within a byte cap, and a read that failed is no history (item 7) --

def test_a_history_read_that_times_out_makes_the_host_unread_not_an_empty_history():
    from tasks.host.remote import TIMED_OUT

    good = record.history_line("deploy", "pi5", "deployed")
    remote = RecordingRemote(answer=lambda command: (TIMED_OUT, good[:10]))
    with pytest.raises(Refused, match=rf"^cannot read the history {re.escape(HISTORY_FILE)}: "):
        inspect.history(remote, S, 20)


def run_history(tmp_path, text: bytes, lines: int) -> tuple[str, list[dict]]:
    """state.history() in a real sh on a history file holding text; (its output, the rows fab shows)."""
    import subprocess

    from tasks.host.remote import Result
    from tasks.shell import state

    s = HostSettings(name="pi5", ssh="pi5", dir=str(tmp_path / "my app"))
    (tmp_path / "my app" / ".fab-bluegreen").mkdir(parents=True)
    (tmp_path / "my app" / state.history_path(s)).write_bytes(text)
    res = subprocess.run(["sh", "-c", state.history(s, lines)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    remote = RecordingRemote(answer=lambda command: (0, res.stdout))
    return res.stdout, inspect.history(remote, s, lines)


def test_a_history_line_of_megabytes_is_not_read_whole(tmp_path):
    good = record.history_line("deploy", "pi5", "deployed")
    out, rows = run_history(tmp_path, f"{good}\n".encode() * 5 + b'{"reason": "' + b"x" * 6_000_000 + b'"}\n', 20)
    assert len(out) < 100_000
    assert rows == [{"action": "?", "reason": f"skipped 1 line of {tmp_path}/my app/.fab-bluegreen/"
                                              "app.history.jsonl not as fab-bluegreen writes them (the first is "
                                              "over the read's byte cap)"}]


def test_a_long_history_of_good_lines_gives_its_last_lines_whole(tmp_path):
    lines = [record.history_line("deploy", "pi5", "deployed", message=f"n{i}") for i in range(2000)]
    out, rows = run_history(tmp_path, ("\n".join(lines) + "\n").encode(), 20)
    assert [row["message"] for row in rows] == [f"n{i}" for i in range(1980, 2000)]
    (tmp_path / "short").mkdir()
    _, short = run_history(tmp_path / "short", f"{lines[0]}\n".encode(), 20)
    assert [row["message"] for row in short] == ["n0"]
