"""The table renders what the hosts did, user text included verbatim (no markup injection)."""

from rich.console import Console

from tasks import report
from tasks.result import DEPLOYED, ROLLED_BACK, DeployResult


def render(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_deploy_table_has_one_row_per_host_with_step_and_reason():
    text = render(report.deploy_table([
        DeployResult("pi5", "deploy", DEPLOYED, "blue", "green", tries=2, seconds=7.25, version="web@abc"),
        DeployResult("vm1", "deploy", ROLLED_BACK, "blue", "green", "health check", "gave [bold]HTTP 500[/]",
                     tries=10, left=["nginx [x]"]),
    ]))
    pi5 = next(line for line in text.splitlines() if "pi5" in line)
    vm1 = next(line for line in text.splitlines() if "vm1" in line)
    assert "deployed" in pi5 and "web@abc" in pi5 and "7.2" in pi5 and " 2 " in pi5
    assert "rolled back" in vm1 and "health check" in vm1 and "10" in vm1
    assert "gave [bold]HTTP 500[/]" in vm1 and "nginx [x]" in vm1


def test_progress_lines_name_the_host_and_keep_brackets():
    console = Console(record=True, width=200)
    say = report.Progress(console).for_host("pi5")
    say("prepare: echo [green]ok[/]")
    text = console.export_text()
    assert "pi5" in text and "prepare: echo [green]ok[/]" in text
