"""No secret on screen or on disk, and no terminal escape from a host on screen.

- the state folder dir/.fab-bluegreen is the SSH user's alone (0700, its files 0600), made so by
  every command that writes there, and tightened by the lock step where an older version left it
  world-readable; nothing is written through a symbolic link;
- a prepare or hook command line is never written into the table or the history: the step, the
  index and how it failed (`after_front[0] failed: exit 1`); its output stays in the progress;
- whatever looks like a credential is masked wherever text is shown or kept (tasks/mask.py);
- text from a host reaches the terminal without control characters (OSC 52, titles, clears)."""

from __future__ import annotations

import functools
import io
import json
import stat
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit
from rich.console import Console

from tasks import fleet, mask, report
from tasks import inspect as inspect_tasks
from tasks.config.schema import HostSettings, Hooks
from tasks.errors import Refused
from tasks.fleet import Fleet
from tasks.host import inspect, lock
from tasks.host.check import CheckResult
from tasks.host.deploy import Deploy, user_failure
from tasks.host.remote import DryRunRemote, RecordingRemote, Result
from tasks.result import DEPLOYED, ROLLED_BACK, CleanupResult, DeployResult, DrainResult
from tasks.shell import base, cpu, guard, journal, record
from tasks.shell import state as state_files

from .fakehost import FakeHost
from .sandbox import Sandbox

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]
TOKEN = "0123456789abcdef0123456789abcdef"
PASSWORD_URL = "DATABASE_URL=postgres://app:hunter2@db/app"
ESCAPES = "\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;owned\x07\x1b[2J\x1b[H\x9b31m\x1bc"  # clipboard, title, clear, reset


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def box(tmp_path):
    sandbox = Sandbox(tmp_path)
    (sandbox.home / "app").mkdir()
    yield sandbox, sandbox.home / "app", sandbox.home / "app" / state_files.STATE_DIR
    sandbox.stop()


# --- the state folder and its files: the SSH user's alone -----------------------------------

def test_every_state_file_is_made_0600_in_a_0700_folder_whatever_the_umask(box):
    sandbox, app, state = box
    info = record.dump({"who": "ann@laptop", "task": "deploy", "message": "m", "token": TOKEN})
    for line in (state_files.lock(S, info), state_files.write_record(S, '{"live": "blue"}'),
                 state_files.append_history(S, record.history_line("deploy", "pi5", "deployed")),
                 cpu.start_sampler(S), journal.append(S, 1, journal.Entry("put the record back", ":")),
                 guard.arm(S, TOKEN, 60)):
        res = sandbox.sh(line, umask=0o022)
        assert res.returncode == 0, (line, res.stdout, res.stderr)
    (app / "compose.yml").write_text("services: {}\n")
    res = sandbox.sh(cpu.start_capped(S, "green", ("worker", "beat"), 0.5, 60), umask=0o022)
    assert res.stdout == "capped\n", res.stdout + res.stderr
    try:
        made = {p.relative_to(state).as_posix(): mode(p) for p in state.rglob("*")}
        assert mode(state) == 0o700
        assert made == {"app.lock": 0o700, "app.lock/undo": 0o700, **dict.fromkeys([
            "app.lock/info", "app.json", "app.history.jsonl", "app.samples", "app.samples.pid", "app.guard",
            "app.guard.until", "app.lock/boot", "app.lock/undo/001", "app.guard.pid", "app.guard.log", "app.green.lift",
            "app.green.lift.sh"], 0o600)}, made
    finally:
        sandbox.sh(f"{guard.disarm(S, TOKEN)}; {cpu.stop_sampler(S)}; {cpu.cancel_lift(S, 'green')}")


def test_the_lock_step_takes_away_what_earlier_versions_let_others_read(box):
    sandbox, app, state = box
    (state / "app.lock").mkdir(parents=True)
    for name in ("app.json", "app.history.jsonl", "app.guard.log", "app.lock/info"):
        (state / name).write_text("{}\n")
        (state / name).chmod(0o644)
    state.chmod(0o755)
    (state / "app.lock").chmod(0o755)
    res = sandbox.sh(state_files.lock(S, "{}"))  # held (by the stale lock): the modes are fixed all the same
    assert res.returncode == 3
    assert {p.name: mode(p) for p in [state, *state.rglob("*")]} == {
        ".fab-bluegreen": 0o700, "app.lock": 0o700, "info": 0o600, "app.json": 0o600,
        "app.history.jsonl": 0o600, "app.guard.log": 0o600}


def test_the_record_is_written_through_a_fresh_temporary_file_never_through_a_link(box):
    sandbox, app, state = box
    state.mkdir()
    victim = sandbox.root / "victim"
    victim.write_text("precious\n")
    (state / "app.json.tmp").symlink_to(victim)  # the fixed name the record was written through
    res = sandbox.sh(state_files.write_record(S, '{"live": "green"}'))
    assert res.returncode == 0, res.stderr
    assert victim.read_text() == "precious\n"
    assert (state / "app.json").read_text() == '{"live": "green"}\n' and mode(state / "app.json") == 0o600
    assert sorted(p.name for p in state.iterdir()) == ["app.json", "app.json.tmp"]  # no temporary file left
    (state / "app.json").unlink()
    (state / "app.json").symlink_to(victim)
    refused = sandbox.sh(state_files.write_record(S, '{"live": "blue"}'))  # refused (issue 19, item 10)
    assert refused.returncode != 0 and "app.json is a symbolic link" in refused.stdout
    assert victim.read_text() == "precious\n" and (state / "app.json").is_symlink()


def test_the_warm_up_lift_and_the_samplers_files_are_never_written_through_a_link(box):
    """issue 19, item 10: the lift's commands (run later by `sh`) and the sampler's output."""
    sandbox, app, state = box
    state.mkdir()
    (app / "compose.yml").write_text("services: {}\n")
    victim = sandbox.root / "victim"
    victim.write_text("precious\n")
    (state / "app.green.lift.sh").symlink_to(victim)
    (state / "app.samples").symlink_to(victim)
    try:
        res = sandbox.sh(cpu.start_capped(S, "green", ("worker", "beat"), 0.5, 60))  # removes a stale lift first
        assert res.stdout == "capped\n", res.stdout + res.stderr
        assert not (state / "app.green.lift.sh").is_symlink() and "docker update" in (state / "app.green.lift.sh").read_text()
        assert sandbox.sh(cpu.start_sampler(S)).returncode == 0
        assert not (state / "app.samples").is_symlink()  # removed before the sampler writes there
        assert victim.read_text() == "precious\n"
    finally:
        sandbox.sh(f"{cpu.stop_sampler(S)}; {cpu.cancel_lift(S, 'green')}")


def test_the_history_is_never_appended_through_a_link(box):
    sandbox, app, state = box
    state.mkdir()
    victim = sandbox.root / "victim"
    victim.write_text("precious\n")
    (state / "app.history.jsonl").symlink_to(victim)
    assert sandbox.sh(state_files.append_history(S, "a line")).returncode != 0
    assert victim.read_text() == "precious\n"


def test_a_state_folder_that_is_a_link_is_refused_and_nothing_is_written_through_it(box):
    sandbox, app, state = box
    elsewhere = sandbox.root / "elsewhere"
    elsewhere.mkdir()
    state.symlink_to(elsewhere)
    res = sandbox.sh(state_files.lock(S, "{}"))
    assert res.returncode == 5 and "is a symbolic link" in Result("", 5, res.stdout).why()
    for line in (state_files.write_record(S, "{}"), state_files.append_history(S, "x"), cpu.start_sampler(S)):
        assert sandbox.sh(line).returncode != 0
    assert list(elsewhere.iterdir()) == []
    remote = RecordingRemote(answer=lambda c: (5, res.stdout))
    with pytest.raises(Refused, match="cannot take the deploy lock: .*/.fab-bluegreen is a symbolic link"):
        lock.take(remote, S, "deploy", TOKEN)


# --- a command line with a password: never in the table or the history --------------------------

def deploy_with(s: HostSettings, host: FakeHost, failing: str = "", output: str = "") -> tuple[DeployResult, str]:
    """Deploy on the fake host; `failing` commands exit 1 printing `output`. The result, and the progress."""
    real = host.answer

    def answer(command: str):
        if failing and failing in command and not host.p.low.sub("", command).startswith("say() {"):
            real(command)
            return 1, output
        return real(command)

    host.remote.answer = answer
    console = Console(file=io.StringIO(), width=400)
    result = Deploy(host.remote, s, report.Progress(console).for_host("pi5")).run()
    return result, console.file.getvalue()


def history_lines(host: FakeHost) -> list[str]:
    return [c for c in host.commands if ">> .fab-bluegreen/app.history.jsonl" in c]


def test_a_failing_hook_is_named_by_its_index_and_its_command_line_kept_off_the_table_and_the_history():
    s = HostSettings(name="pi5", ssh="pi5", settle=0,
                     hooks=Hooks(after_front=(f"{PASSWORD_URL} ./manage.py migrate",)))
    host = FakeHost(running={"blue": ALL})
    r, progress = deploy_with(s, host, "manage.py migrate",
                              "connecting to postgres://app:hunter2@db/app\nFATAL: password authentication failed\n")
    assert (r.outcome, r.step, r.reason) == (ROLLED_BACK, "after_front hook", "after_front[0] failed: exit 1")
    assert "after_front: DATABASE_URL=postgres://app:***@db/app ./manage.py migrate" in progress
    assert "connecting to postgres://app:***@db/app" in progress and "FATAL: password authentication" in progress
    assert "hunter2" not in progress
    assert history_lines(host) and not any("hunter2" in c or "manage.py" in c for c in history_lines(host))
    table = rendered(report.deploy_table([r]))
    assert "after_front[0] failed: exit 1" in table and "manage.py" not in table and "hunter2" not in table


def test_a_failing_prepare_command_and_a_warning_hook_are_named_by_their_index():
    s = HostSettings(name="pi5", ssh="pi5", settle=0, prepare=("git pull --ff-only", "API_TOKEN=s3cr3t make build"))
    r, progress = deploy_with(s, FakeHost(running={"blue": ALL}), "make build", "make: *** [build] Error 2\n")
    assert r.reason == "prepare[1] failed: exit 1 (nothing was changed)"
    assert "prepare: API_TOKEN=*** make build" in progress and "[build] Error 2" in progress
    assert "s3cr3t" not in progress + r.reason
    s = HostSettings(name="pi5", ssh="pi5", settle=0,
                     hooks=Hooks(after_switch=("curl -fsS https://hc:pingkey@hc-ping.com/x",)))
    host = FakeHost(running={"blue": ALL})
    r, progress = deploy_with(s, host, "hc-ping.com", "curl: (22) 404\n")
    assert r.outcome == DEPLOYED and r.warnings == ["after_switch[0] failed: exit 1"]
    assert "https://hc:***@hc-ping.com/x" in progress and "pingkey" not in progress
    assert not any("pingkey" in c for c in history_lines(host))


def test_how_a_user_command_failed_is_said_in_the_tools_own_words():
    assert user_failure(Result("x", 1, "DATABASE_URL=postgres://a:b@c/d failed\n", "boom")) == "exit 1"
    assert user_failure(Result("x", 124, "partial", "timed out after 3 s")) == "timed out after 3 s"
    gone = Result("x", 9, f"{base.WHY}{guard.GONE_REASON}\n")
    assert user_failure(gone) == guard.GONE_REASON
    assert user_failure(Result("x", 9, f"{base.WHY}the hook's own words\n")) == "exit 9"


def test_the_dry_run_plan_masks_credentials(capsys):
    s = HostSettings(name="pi5", ssh="pi5", settle=0, prepare=(f"{PASSWORD_URL} ./manage.py check",))
    dry = DryRunRemote(FakeHost(running={"blue": ALL}).remote)
    r = Deploy(dry, s).run()
    r.plan = [line for _, line in dry.plan]
    assert any("hunter2" in line for line in r.plan)  # the command the host would run, as written
    report.plans([r])
    out = capsys.readouterr().out
    assert "postgres://app:***@db/app ./manage.py check" in out and "hunter2" not in out


def test_the_message_is_masked_in_the_lock_and_the_history():
    remote = RecordingRemote(answer=lambda c: (0, "acquired\n"))
    lock.take(remote, S, "deploy", TOKEN, message="hotfix, API_TOKEN=abc123 rotated")
    assert "API_TOKEN=***" in remote.commands[0] and "abc123" not in remote.commands[0]
    line = json.loads(record.history_line("deploy", "pi5", "deployed", message="pw postgres://u:pw1@h/d",
                                          reason="SECRET_KEY='x y' leaked"))
    assert (line["message"], line["reason"]) == ("pw postgres://u:***@h/d", "SECRET_KEY=*** leaked")


# --- one masking function, one stripping function ----------------------------------------------

@pytest.mark.parametrize("text, shown", [
    ("DATABASE_URL=postgres://app:hunter2@db/app ./manage.py migrate",
     "DATABASE_URL=postgres://app:***@db/app ./manage.py migrate"),
    ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
    ("export API_KEY=abc STRIPE_SECRET_KEY='sk live' token=t db_password=\"p w\" x",
     "export API_KEY=*** STRIPE_SECRET_KEY=*** token=*** db_password=*** x"),
    ("hosts.a.prepare: 'PASSWORD=hunter2\\x07': one line", "hosts.a.prepare: 'PASSWORD=***': one line"),
    ("--api-key=xyz curl -H x", "--api-key=*** curl -H x"),
    ("http://127.0.0.1:18001/health/ gave HTTP 500; ssh://git@github.com/x", None),  # nothing to mask
    ("docker ps --filter label=com.docker.compose.project=app-blue DEPLOY_COLOR=blue", None),
])
def test_credentials_are_masked(text, shown):
    assert mask.secrets(text) == (shown or text)


def test_control_characters_are_stripped_but_newlines_and_tabs():
    assert mask.printable(f"a{ESCAPES}b\r\n\tc\x00\x7f\u202ed") == "ab\n\tcd"
    assert mask.shown("x\x1b]0;API_TOKEN=abc\x07 API_TOKEN=abc") == "x API_TOKEN=***"


def rendered(*things) -> str:
    console = Console(file=io.StringIO(), width=400, force_terminal=False, color_system=None)
    for thing in things:
        console.print(thing)
    return console.file.getvalue()


HOSTILE = f"gave {ESCAPES} [bold]x[/] postgres://app:hunter2@db/app"


def assert_clean(out: str) -> None:
    assert not any(c in out for c in "\x1b\x07\x9b"), repr(out)
    assert "hunter2" not in out and "postgres://app:***@db/app" in out and "[bold]x[/]" in out


def test_the_tables_show_no_escape_sequence_and_no_credential():
    common = dict(host="pi5", outcome=ROLLED_BACK, from_color="blue", to_color="green", step="health check",
                  reason=HOSTILE, warnings=[HOSTILE])
    deployed = DeployResult(action="deploy", left=[HOSTILE], version=HOSTILE, host_load=HOSTILE, **common)
    cleaned = CleanupResult(action="cleanup", version=HOSTILE, removes=[HOSTILE], **common)
    drained = DrainResult(action="drain", queued={HOSTILE: 3}, **common)
    status = inspect.HostStatus("pi5", live="blue", since=HOSTILE,
                                colors={"blue": inspect.ColorStatus(HOSTILE, {"web": HOSTILE}, HOSTILE)}, health=200,
                                lock=HOSTILE, guard=HOSTILE, last=HOSTILE, shared={"broker": HOSTILE})
    lines = [{"time": HOSTILE, "action": "deploy", "user": HOSTILE, "from": HOSTILE, "to": "green",
              "result": HOSTILE, "step": HOSTILE, "reason": HOSTILE, "message": HOSTILE, "versions": {"blue": HOSTILE}}]
    for table in (report.deploy_table([deployed]), report.cleanup_table([cleaned]), report.drain_table([drained]),
                  report.status_table([status, inspect.HostStatus("vm1", False, HOSTILE)]),
                  report.history_table([("pi5", lines)]),
                  report.check_table([("pi5", CheckResult([("fail", "nginx", HOSTILE)]))]),
                  report.simple_table("fab unlock", ["host", "lock"], [["pi5", HOSTILE]])):
        assert_clean(rendered(table))


def test_progress_and_failure_details_show_no_escape_sequence_and_no_credential():
    console = Console(file=io.StringIO(), width=400, force_terminal=False, color_system=None)
    report.Progress(console).for_host("pi5")(f"  {HOSTILE}")  # a hook's output line
    r = DeployResult("pi5", "deploy", ROLLED_BACK, "blue", "green", log_tail=f"{HOSTILE}\nline 2", left=[HOSTILE],
                     logs_command="ssh pi5 'docker compose logs web'")
    report.failure_details([r], console)
    out = console.file.getvalue()
    assert_clean(out)
    assert "line 2" in out


def test_fab_logs_shows_container_logs_without_escape_sequences(tmp_path, capsys, monkeypatch):
    def connect(s):
        return RecordingRemote(name=s.name, answer=lambda c: (0, f"web-1 | {HOSTILE}\n"))

    monkeypatch.setattr(fleet, "Fleet", functools.partial(Fleet, connect=connect))
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.h1]\nssh = "h1"\n')
    inspect_tasks.logs(Context(), host=["h1"], hosts_file=str(path), colour="green", service="web")
    assert_clean(capsys.readouterr().out)


def test_an_error_line_masks_the_credential_it_quotes(tmp_path):
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.h1]\nssh = "h1"\nprepare = ["PASSWORD=hunter2\\u001b]0;x\\u0007 ./deploy"]\n')
    with pytest.raises(Exit) as e:
        inspect_tasks.status(Context(), hosts_file=str(path))
    assert e.value.code == 2 and "PASSWORD=***" in e.value.message and "hunter2" not in e.value.message
    assert "\x1b" not in e.value.message and e.value.message.count("\n") == 0
