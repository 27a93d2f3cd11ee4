"""Tables that fit (tasks/layout.py): at a terminal of 60, 80 or 120 columns no line is wider than
it, no result word is cut and nothing is dropped (a long reason goes under its row); not at a
terminal, the whole table at its own width, plain."""

import io
import re

import pytest
from rich.console import Console

from tasks import report
from tasks.host import inspect
from tasks.result import Outcome, DeployResult

LONG_HOST = "raspberrypi-living-room.example.org"
REASON = ("cannot connect to deploy@raspberrypi-living-room.example.org:22: [Errno 113] No route to host: "
          "is the host up? (a reason long enough to need three lines at 60 columns)")
LOAD = "load 0.31 of 4 CPUs; 812 MB of 7.8 GB memory free; warm-up cap: 1.5 CPU for 60 s"
URL = "http://127.0.0.1:18002/health/" + "x" * 70  # one word wider than the screen: it folds


def deploy_results() -> list[DeployResult]:
    rows = [DeployResult(f"h{i}-{outcome.replace(' ', '-')}", "deploy", outcome, "blue", "green", "health check",
                         f"{REASON} #{i}", tries=10, seconds=12.5, version="web@3f2a1c9", host_load=LOAD)
            for i, outcome in enumerate(Outcome)]
    rows.append(DeployResult(LONG_HOST, "deploy", Outcome.UNREACHABLE, "blue", "green", "connect", f"{URL} gave 500",
                             left=["nginx still points at green: switch it back by hand"],
                             warnings=["worker was killed"]))
    return rows


def status_rows() -> list[inspect.HostStatus]:
    color = inspect.ColorStatus("web@3f2a1c9", {"web": "running", "worker": "exited", "beat": "exited"}, "on")
    return [inspect.HostStatus(LONG_HOST, live="green", since="2026-12-07T06:34:44+00:00",
                               colors={"blue": color, "green": color}, health=200, lock=f"held: {REASON}",
                               guard="armed until 06:40 (puts blue back)", last=f"deploy rolled back: {REASON}",
                               shared={"broker": "running", "db": "running"}, staged="green (port 18002)"),
            inspect.HostStatus("vm1", False, f"unreachable: {REASON}")]


def history_hosts() -> list[tuple[str, list[dict]]]:
    lines = [{"time": "2026-12-07T06:34:44+00:00", "action": "deploy", "user": "alice@laptop", "from": "blue",
              "to": "green", "result": str(outcome), "step": "health check", "reason": f"{REASON} #{i}",
              "message": "release 1.4", "versions": {"blue": "web@3f2a1c9", "green": "web@77e0aa1"}}
             for i, outcome in enumerate(Outcome)]
    return [(LONG_HOST, lines), ("vm1", [])]


def at_terminal(table, width: int) -> str:
    console = Console(record=True, width=width, force_terminal=True, file=io.StringIO())
    report.show(table, console)
    return console.export_text()


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


TABLES = {"deploy": lambda: report.deploy_table(deploy_results()),
          "status": lambda: report.status_table(status_rows()),
          "history": lambda: report.history_table(history_hosts())}
REASONS = {"deploy": [f"{REASON} #{i}" for i in range(len(Outcome))] + [URL, "switch it back by hand", LOAD],
           "status": [REASON, "worker beat exited (warm-up cap on)", "armed until 06:40", "broker running"],
           "history": [f"{REASON} #{i}" for i in range(len(Outcome))] + ["blue web@3f2a1c9, green web@77e0aa1"]}


@pytest.mark.parametrize("width", [60, 80, 120])
@pytest.mark.parametrize("name", TABLES)
def test_at_a_terminal_the_table_fits_and_keeps_every_word(name, width):
    text = at_terminal(TABLES[name](), width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert "┃" not in text  # narrower than the whole table: its long columns went under the rows
    for reason in REASONS[name]:  # nothing dropped: each text is there, wrapped
        assert squeezed(reason) in squeezed(text), (reason, text)
    if name != "status":  # every result word whole, on one line, in a row of the table
        for outcome in Outcome:
            assert any(re.search(rf"  {outcome}(  |$)", line) for line in lines), (outcome, text)


@pytest.mark.parametrize("name", TABLES)
def test_at_80_columns_the_reason_is_on_its_own_indented_lines_under_its_row(name):
    text = at_terminal(TABLES[name](), 80)
    lines = text.splitlines()
    host = {"deploy": "h0-deployed", "status": LONG_HOST[:20], "history": LONG_HOST[:20]}[name]
    first = next(i for i, line in enumerate(lines) if line.startswith(host))
    label = {"deploy": "why: ", "status": "last action: ", "history": "step / why: "}[name]
    under = next(i for i in range(first, len(lines)) if lines[i].lstrip().startswith(label))
    assert lines[under].startswith("    " + label) and "cannot connect" in lines[under]
    assert lines[under + 1].startswith("    ") and lines[under + 1].strip()  # the reason's next line, indented too


def test_a_table_that_fits_is_shown_whole_at_a_terminal():
    text = at_terminal(report.deploy_table([DeployResult("pi5", "deploy", Outcome.DEPLOYED, "blue", "green",
                                                         version="web@abc", host_load="load 0.1")]), 200)
    assert "┃ host" in text and "load 0.1" in text.splitlines()[4]  # the one row, with its telemetry cell


def test_status_of_an_unreachable_host_says_why_under_its_row():
    text = at_terminal(report.status_table(status_rows()), 80)
    vm1 = text.splitlines().index(next(line for line in text.splitlines() if line.startswith("vm1 ")))
    assert text.splitlines()[vm1 + 1].startswith("    last action: unreachable: cannot connect")


@pytest.mark.parametrize("name", TABLES)
def test_piped_the_whole_table_is_plain_at_its_own_width_never_cut_or_wrapped(name):
    console = Console(file=io.StringIO(), width=80)  # not a terminal
    report.show(TABLES[name](), console)
    text = console.file.getvalue()
    assert "\x1b" not in text and "┃ host" in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert len({len(line) for line in text.splitlines()[1:]}) == 1  # every line of the frame: one width
    assert max(len(line) for line in rows) > 80  # wider than the console: not cut to it
    for reason in REASONS[name]:
        assert any(reason in row for row in rows) or name == "status", reason  # whole, on one line
    assert len(rows) == {"deploy": len(Outcome) + 1, "status": 2, "history": len(Outcome) + 1}[name]


def test_piped_a_table_parses_as_the_end_to_end_tests_read_it():
    from tests.e2e.conftest import rows

    console = Console(file=io.StringIO(), width=200)
    report.show(report.deploy_table(deploy_results()), console)
    parsed = rows(console.file.getvalue())
    assert "unreachable" in parsed[LONG_HOST] and URL in parsed[LONG_HOST]
    assert "rolled back" in parsed["h3-rolled-back"] and f"{REASON} #3" in parsed["h3-rolled-back"]


def other_tables():
    from tasks.host.check import CheckResult
    from tasks.result import CleanupResult, DrainResult, SetupResult

    common = dict(from_color="blue", to_color="green", reason=REASON)
    return {
        "cleanup": report.cleanup_table([CleanupResult(LONG_HOST, "cleanup", outcome, version="web@3f2a1c9", cut=3,
                                                       removes=["app-blue-web-1 (running)", "app-blue-worker-1 (exited)"],
                                                       **common) for outcome in Outcome]),
        "drain": report.drain_table([DrainResult(LONG_HOST, "drain", outcome, queued={"celery": 3, "mail": 12},
                                                 seconds=61.5, **common) for outcome in Outcome]),
        "check": report.check_table([(LONG_HOST, CheckResult([("fail", "docker compose v2 plugin", REASON),
                                                              ("warn", "sudo -n", REASON), ("ok", "nginx -t", "ok")]))]),
        "unlock": report.lock_table([inspect.LockLook(LONG_HOST, held=True, holder=f"alice@laptop: {REASON}",
                                                      guard="armed: acts in 40 s", plan=[REASON])]),
        "setup": report.setup_table([SetupResult(LONG_HOST, "setup", outcome, reason=REASON, kept=["~/app"],
                                                 done=["wrote /etc/nginx/conf.d/app_upstream.conf (blue, port 18001)",
                                                       "wrote /etc/nginx/sites-available/app.conf"])
                                     for outcome in Outcome]),
        "unlock result": report.simple_table("fab unlock", ["host", "result"], [[LONG_HOST, f"not removed: {REASON}"]]),
    }


@pytest.mark.parametrize("width", [60, 80])
@pytest.mark.parametrize("name", ["cleanup", "drain", "check", "setup", "unlock", "unlock result"])
def test_the_other_tables_fit_too(name, width):
    text = at_terminal(other_tables()[name], width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    assert squeezed(REASON) in squeezed(text)
    words = {"cleanup": list(Outcome), "drain": list(Outcome), "setup": list(Outcome),
             "check": ["fail", "warn", "ok"]}.get(name, [])
    for word in words:
        assert any(re.search(rf"  {word}(  |$)", line) for line in text.splitlines()), (word, text)
