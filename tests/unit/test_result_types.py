"""The typed values: Outcome and Color are StrEnums (printed, compared and written to JSON as their plain
text), and each action has its own result class, which the fleet and the report keep apart."""

import io
import json

import pytest
from rich.console import Console

from tasks import report
from tasks.config import loader
from tasks.config.schema import COLORS, Color, HostSettings
from tasks.errors import Unreachable
from tasks.fleet import Fleet
from tasks.host import cleanup
from tasks.host.drain import drain
from tasks.host.facts import other
from tasks.result import (CLEANED, DEPLOYED, DRAINED, NOTHING, OK, PLANNED, ROLLED_BACK, CleanupResult,
                          DeployResult, DrainResult, HostResult, Outcome, result_for)
from tasks.shell import record

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]
NOT_OK = {Outcome.ROLLED_BACK, Outcome.FAILED, Outcome.REFUSED, Outcome.UNREACHABLE, Outcome.LOCKED,
          Outcome.INTERRUPTED, Outcome.SKIPPED}


def render(table) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(table)
    return console.export_text()


def row(text: str, host: str) -> str:
    return next(line for line in text.splitlines() if host in line)


# --- Outcome -----------------------------------------------------------------------------------

@pytest.mark.parametrize("outcome", list(Outcome))
def test_each_outcome_is_ok_or_not_and_a_result_says_the_same(outcome):
    assert outcome.ok == (outcome not in NOT_OK)
    assert OK | NOT_OK == set(Outcome) and not OK & NOT_OK  # every outcome is one or the other
    assert HostResult("pi5", "deploy", outcome).ok == outcome.ok
    assert HostResult("pi5", "deploy", outcome.value).ok == outcome.ok  # a plain string compares equal


def test_a_result_without_an_outcome_is_not_ok():
    assert not HostResult("pi5", "deploy").ok


def test_outcomes_read_and_dump_as_their_plain_text():
    assert Outcome.DRY_RUN == "dry run" and f"{Outcome.DRY_RUN}" == "dry run" and str(ROLLED_BACK) == "rolled back"
    assert json.dumps(Outcome.NOTHING_TO_DRAIN) == '"nothing to drain"'
    assert json.dumps({"result": DEPLOYED}) == '{"result": "deployed"}'
    assert Outcome("cleaned") is CLEANED  # the module-level names are the members
    line = json.loads(record.history_line("cleanup", "pi5", CLEANED, **{"from": Color.GREEN, "to": Color.BLUE}))
    assert (line["result"], line["from"], line["to"]) == ("cleaned", "green", "blue")


# --- Color -------------------------------------------------------------------------------------

def test_each_colour_has_the_other():
    assert Color.BLUE.other is Color.GREEN and Color.GREEN.other is Color.BLUE
    assert other("blue") is Color.GREEN and other(Color.GREEN) is Color.BLUE
    assert COLORS == ("blue", "green") == (Color.BLUE, Color.GREEN)


def test_colours_read_and_dump_as_their_plain_text():
    assert f"{Color.BLUE}" == "blue" and str(Color.GREEN) == "green" and Color.BLUE == "blue"
    assert json.dumps(Color.GREEN) == '"green"'
    assert record.dump({"live": Color.BLUE, "colors": {Color.GREEN: {}}}) == '{"colors":{"green":{}},"live":"blue"}'
    assert "{color}:{port}".format(color=Color.GREEN, port=18002) == "green:18002"  # switch.command's fill-in


def test_the_loaded_ports_are_keyed_by_colour(tmp_path):
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.pi5]\nssh = "pi5"\nports = { green = 9002 }\n')
    s = loader.load(path).hosts["pi5"]
    assert s.ports == ((Color.BLUE, 18001), (Color.GREEN, 9002))
    assert all(type(c) is Color for c, _ in s.ports)


def test_the_colours_a_host_reports_are_colours():
    host = FakeHost(running={"blue": ALL, "green": ALL}, record='{"live": "blue"}')
    planned = cleanup.plan(host.remote, S)
    assert planned.outcome == PLANNED and (planned.from_color, planned.to_color) == ("green", "blue")
    assert type(planned.from_color) is Color and type(planned.to_color) is Color


# --- one result class per action ---------------------------------------------------------------

@pytest.mark.parametrize("action, cls", [("deploy", DeployResult), ("rollback", DeployResult),
                                         ("cleanup", CleanupResult), ("drain", DrainResult),
                                         ("unlock", HostResult)])
def test_result_for_picks_the_actions_class(action, cls):
    r = result_for(action, "pi5", outcome=Outcome.SKIPPED, reason="not started")
    assert type(r) is cls
    assert (r.host, r.action, r.outcome, r.reason) == ("pi5", action, "skipped", "not started")


def test_the_fields_of_one_action_are_not_on_another():
    assert not hasattr(CleanupResult("pi5", "cleanup"), "tries")
    assert not hasattr(DrainResult("pi5", "drain"), "removes")
    assert not hasattr(DeployResult("pi5", "deploy"), "queued")


def test_the_fleets_own_rows_are_of_the_actions_class():
    def connect(s):
        raise Unreachable("no route to host")

    fleet = Fleet(report.Progress(Console(file=io.StringIO())), connect=connect)
    for action, cls in (("deploy", DeployResult), ("cleanup", CleanupResult), ("drain", DrainResult)):
        (r,) = fleet.run([S], action, lambda remote, s, say: None)
        assert type(r) is cls and r.outcome == "unreachable" and r.step == "connect"


def test_each_task_makes_its_own_class():
    assert type(cleanup.plan(FakeHost(running={"blue": ALL}).remote, S)) is CleanupResult
    assert type(drain(FakeHost(running={"blue": ALL}).remote, S)) is DrainResult


# --- the report renders each class -------------------------------------------------------------

def test_the_deploy_table_renders_a_deploy_result():
    text = render(report.deploy_table([
        DeployResult("pi5", "deploy", DEPLOYED, Color.BLUE, Color.GREEN, tries=2, seconds=7.25, version="web@abc",
                     cap="1 CPU for 60 s", host_load="peak CPU 90 %"),
        DeployResult("vm1", "deploy", ROLLED_BACK, Color.BLUE, Color.GREEN, "health check", "gave HTTP 500",
                     tries=10, left=["nginx [x]"], warnings=["slow"]),
    ]))
    pi5, vm1 = row(text, "pi5"), row(text, "vm1")
    assert "blue" in pi5 and "green" in pi5 and "deployed" in pi5 and "web@abc" in pi5 and " 2 " in pi5
    assert "peak CPU 90 %; warm-up cap: 1 CPU for 60 s" in pi5
    assert "rolled back" in vm1 and "health check" in vm1 and "gave HTTP 500; nginx [x]; warning: slow" in vm1


def test_the_cleanup_table_renders_a_cleanup_result():
    text = render(report.cleanup_table([
        CleanupResult("pi5", "cleanup", PLANNED, Color.GREEN, Color.BLUE, version="web@abc",
                      removes=["app-green-web (running)"]),
        CleanupResult("vm1", "cleanup", NOTHING, None, Color.BLUE, warnings=["image kept"]),
    ]))
    pi5, vm1 = row(text, "pi5"), row(text, "vm1")
    assert "green" in pi5 and "app-green-web (running)" in pi5 and "blue web@abc" in pi5 and "planned" in pi5
    assert "nothing to clean" in vm1 and "image kept" in vm1


def test_the_drain_table_renders_a_drain_result():
    text = render(report.drain_table([
        DrainResult("pi5", "drain", DRAINED, Color.GREEN, Color.BLUE, seconds=3.5, queued={"celery": 3, "mail": 0}),
        result_for("drain", "vm1", outcome=Outcome.UNREACHABLE, step="connect", reason="no route"),
    ]))
    pi5, vm1 = row(text, "pi5"), row(text, "vm1")
    assert "green" in pi5 and "celery: 3" in pi5 and "blue" in pi5 and "drained" in pi5 and "3.5" in pi5
    assert "mail" not in pi5  # only the queues where messages waited
    assert "unreachable" in vm1 and "no route" in vm1
