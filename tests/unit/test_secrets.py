"""Secrets ([defaults.secrets]): read on the workstation, checked before any host is contacted,
written to each colour's own file on the host from a channel's standard input (never a command
line), passed to every compose command as DEPLOY_ENV_FILE, masked wherever fab shows or keeps text.
The bed shows the same on real hosts (tests/e2e/test_secrets.py)."""

from __future__ import annotations

import io
import json
import stat
from dataclasses import replace

import pytest
from rich.console import Console

from tasks import mask, report
from tasks.config import loader
from tasks.config import secrets as secrets_config
from tasks.config.schema import Hooks, HostSettings, Secrets
from tasks.config.secrets import SecretEnv
from tasks.errors import ConfigError
from tasks.host import cleanup
from tasks.host.deploy import Deploy, Promote, Rollback, Stage
from tasks.host.drain import drain
from tasks.host.remote import DryRunRemote
from tasks.result import CLEANED, DEPLOYED, DRAINED, DRY_RUN, ROLLED_BACK, STAGED, UNSTAGED
from tasks.shell import compose, hooks
from tasks.shell import state as state_files

from .fakehost import FakeHost
from .sandbox import Sandbox
from .test_cli import tripwire  # noqa: F401 (a fixture)

ALL = ["web", "redis", "worker", "beat"]
TEXT = ("# the app's secrets\n"
        "export DATABASE_URL=postgres://app:Xy7-db-pass@db/app\n"
        "\n"
        "API_TOKEN='tok en$with$dollars'   # single quotes: compose takes it as it is\n"
        "BROKER_URL=\"redis://:br0ker-pw@broker:6379/0\"\n")
VALUES = ("Xy7-db-pass", "tok en$with$dollars", "br0ker-pw")
S = HostSettings(name="pi5", ssh="pi5", settle=0, prepare=("docker compose build",),
                 secrets=Secrets(env_file="secrets/prod.env", base="/nowhere", origin="hosts.toml: defaults.secrets"))
ENV = SecretEnv("secrets/prod.env", TEXT.encode(), ("DATABASE_URL", "API_TOKEN", "BROKER_URL"),
                tuple(v for line in TEXT.splitlines() for v in VALUES if v in line))


@pytest.fixture(autouse=True)
def forget_hidden(monkeypatch):
    monkeypatch.setattr(mask, "_hidden", ())  # what a test hides stays in that test
    monkeypatch.setattr(mask, "_pattern", None, raising=False)


# --- the file: KEY=value lines, errors by file and line, never the value ---------------------------

def test_dotenv_text_gives_its_keys_and_values():
    keys, values = secrets_config.parse(TEXT, "prod.env")
    assert keys == ["DATABASE_URL", "API_TOKEN", "BROKER_URL"]
    assert "postgres://app:Xy7-db-pass@db/app" in values and "tok en$with$dollars" in values
    assert "redis://:br0ker-pw@broker:6379/0" in values
    keys, values = secrets_config.parse('A=1\r\nB="x\\"y" # c\nC=bare value # comment\nexport\tD=\n', "w.env")
    assert keys == ["A", "B", "C", "D"] and values[:1] == ["1"] and 'x"y' in values and "bare value" in values


@pytest.mark.parametrize("line, why", [
    ("sk_live_51Habc", "not KEY=value"),
    ("my-key=sk_live_51Habc", "the name before '=' is not a shell name"),
    ("9KEY=sk_live_51Habc", "the name before '=' is not a shell name"),
    ("KEY='sk_live_51Habc", "a quoted value is not closed on its line"),
    ('KEY="sk_live_51Habc" trailing', "something other than a # comment follows the closing quote"),
    ("KEY=sk_live_51Habc\x1b[2J", "holds a control character"),
])
def test_a_malformed_line_is_named_by_file_and_line_never_by_its_text(tmp_path, line, why):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "prod.env").write_text(f"# ok\nA=1\n{line}\nB=2\n")
    (tmp_path / "hosts.toml").write_text('[defaults.secrets]\nenv_file = "secrets/prod.env"\n[hosts.h1]\nssh = "h1"\n')
    s = loader.load(tmp_path / "hosts.toml").hosts["h1"]
    with pytest.raises(ConfigError) as e:
        secrets_config.for_hosts([s])
    assert e.value.exit_code == 2
    assert str(e.value).startswith(f"secrets/prod.env:3: {why}")
    assert str(e.value).endswith(f" ({tmp_path / 'hosts.toml'}: defaults.secrets.env_file)")
    assert "sk_live" not in str(e.value)


def test_the_file_is_relative_to_the_hosts_file_and_read_once_for_every_host(tmp_path, monkeypatch):
    (tmp_path / "prod.env").write_text(TEXT)
    (tmp_path / "pi.env").write_text("PI_ONLY=pi-secret-1\n")
    (tmp_path / "hosts.toml").write_text('[defaults.secrets]\nenv_file = "prod.env"\n'
                                         '[hosts.h1]\nssh = "h1"\n[hosts.h2]\nssh = "h2"\n'
                                         '[hosts.pi]\nssh = "pi"\nsecrets = { env_file = "pi.env" }\n'
                                         '[hosts.bare]\nssh = "bare"\nsecrets = { env_file = "" }\n')
    monkeypatch.chdir(tmp_path.parent)  # not where the hosts file is
    hosts = list(loader.load(tmp_path / "hosts.toml").hosts.values())
    envs = secrets_config.for_hosts(hosts)
    assert envs["h1"] is envs["h2"] and envs["h1"].text == TEXT.encode() and envs["bare"] is None
    assert envs["h1"].describe() == "3 keys from prod.env" and envs["pi"].describe() == "1 key from pi.env"
    assert "Xy7-db-pass" not in repr(envs["h1"])
    said = "db postgres://app:Xy7-db-pass@db/app, token tok en$with$dollars, pi pi-secret-1"
    assert mask.secrets(said) == "db ***, token ***, pi ***"


def test_the_command_runs_once_per_run_and_a_failure_is_its_exit_code_not_its_output(tmp_path):
    (tmp_path / "hosts.toml").write_text(
        '[defaults.secrets]\ncommand = "echo run >> ran.log; printf \'TOKEN=from-the-command\\\\n\'"\n'
        '[hosts.h1]\nssh = "h1"\n[hosts.h2]\nssh = "h2"\n'
        '[hosts.h3]\nssh = "h3"\nsecrets = { command = "echo TOKEN=leaked-in-output; exit 3" }\n')
    hosts = loader.load(tmp_path / "hosts.toml").hosts
    envs = secrets_config.for_hosts([hosts["h1"], hosts["h2"]])
    assert envs["h1"].text == b"TOKEN=from-the-command\n" and envs["h1"] is envs["h2"]
    assert (tmp_path / "ran.log").read_text() == "run\n"  # in the hosts file's folder, once
    with pytest.raises(ConfigError) as e:
        secrets_config.for_hosts([hosts["h3"]])
    assert str(e.value) == (f"{tmp_path / 'hosts.toml'}: hosts.h3.secrets.command: exit 3 (its output is not "
                            "shown: run it yourself to see why)")


@pytest.mark.parametrize("toml, message", [
    ('[defaults.secrets]\nenv_file = "a.env"\ncommand = "pass show x"\n[hosts.h1]\nssh = "h1"\n',
     "defaults.secrets: set env_file or command, not both"),
    ('[defaults.secrets]\nenv_file = "a.env"\n[hosts.h1]\nssh = "h1"\nsecrets = { command = "pass show x" }\n',
     "hosts.h1.secrets: set env_file or command, not both"),
    ('[defaults.secrets]\nfile = "a.env"\n[hosts.h1]\nssh = "h1"\n', "defaults.secrets.file: unknown key"),
    ('[defaults.secrets]\nenv_file = 3\n[hosts.h1]\nssh = "h1"\n', "defaults.secrets.env_file: expected a string"),
])
def test_settings_mistakes_are_one_line_naming_the_key(tmp_path, toml, message):
    (tmp_path / "hosts.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        loader.load(tmp_path / "hosts.toml")


def test_a_missing_file_names_the_key_that_named_it(tmp_path):
    (tmp_path / "hosts.toml").write_text('[hosts.h1]\nssh = "h1"\nsecrets = { env_file = "gone.env" }\n')
    with pytest.raises(ConfigError, match=r"hosts.toml: hosts.h1.secrets.env_file: gone.env: no such file$"):
        secrets_config.for_hosts(list(loader.load(tmp_path / "hosts.toml").hosts.values()))


def test_fab_deploy_with_a_malformed_file_exits_2_before_any_host_is_contacted(tmp_path, tripwire):
    from .test_cli import assert_usage_error, fab

    (tmp_path / "prod.env").write_text("A=1\nthis line holds sk_live_51Habc\n")
    (tmp_path / "hosts.toml").write_text(f'[defaults]\nconnect_timeout = 1\nsecrets = {{ env_file = "prod.env" }}\n'
                                         f'[hosts.h1]\nssh = "deploy@127.0.0.1:{tripwire.getsockname()[1]}"\n')
    for task in ("deploy", "promote", "rollback"):
        r = fab(tmp_path, task, "--host", "h1", "--hosts-file", str(tmp_path / "hosts.toml"))
        assert_usage_error(r, "error: prod.env:2: not KEY=value (", tripwire)
        assert "sk_live" not in r.stdout + r.stderr


# --- on the host: the colour's own file, from stdin; DEPLOY_ENV_FILE on every compose command --------

def test_the_file_is_written_0600_atomically_from_stdin_and_never_through_a_link(tmp_path):
    box = Sandbox(tmp_path)
    app = box.home / "app"
    app.mkdir()
    line = state_files.write_env(S, "green")
    assert "Xy7" not in line

    def write(text: bytes):
        return __import__("subprocess").run(["sh", "-c", f"umask 022; {line}"], input=text, cwd=box.home,
                                            capture_output=True, env={"HOME": str(box.home), "PATH": "/usr/bin:/bin"})

    assert write(TEXT.encode()).returncode == 0
    path = app / ".fab-bluegreen" / "app.green.env"
    assert path.read_bytes() == TEXT.encode() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path.unlink()
    path.symlink_to(victim)
    refused = write(b"A=2\n")  # a link in its place is refused (issue 19, item 10), and left for a person
    assert refused.returncode != 0 and b"app.green.env is a symbolic link" in refused.stdout
    assert victim.read_text() == "precious\n" and path.is_symlink()
    assert sorted(p.name for p in path.parent.iterdir()) == ["app.green.env"]  # no temporary file left
    (path.parent / "app.green.env").unlink()
    path.parent.rmdir()
    path.parent.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    assert write(b"A=3\n").returncode != 0 and list((tmp_path / "elsewhere").iterdir()) == []


def test_compose_and_the_users_commands_get_the_colours_own_file_only_when_secrets_are_configured(tmp_path):
    box = Sandbox(tmp_path)
    state = box.home / "app" / ".fab-bluegreen"
    state.mkdir(parents=True)
    (state / "app.green.env").write_text("A=1\n")
    for line, color in ((compose.up(S, "green", ("web",)), "green"), (compose.stop(S, "blue"), "blue"),
                        (hooks.hook(S, "green", "blue", "{compose} ps"), "green"),
                        (hooks.prepare(S, "green", "true"), "green")):
        assert f".fab-bluegreen/app.{color}.env" in line
        res = box.sh(f"{line} >/dev/null; echo \"$DEPLOY_ENV_FILE\"" if "export" in line else
                     line.replace("docker compose", "sh -c 'echo \"$DEPLOY_ENV_FILE\"' docker compose"))
        # green has a file: its absolute path; blue has none (deployed before secrets): /dev/null
        assert res.stdout.strip().splitlines()[-1] == (str(state / "app.green.env") if color == "green" else "/dev/null")
    plain = replace(S, secrets=Secrets())
    assert "DEPLOY_ENV_FILE" not in compose.up(plain, "green", ("web",)) + hooks.hook(plain, "green", None, "x")


def deploy(host: FakeHost, cls=Deploy, s: HostSettings = S, env: SecretEnv | None = ENV, **kw):
    return cls(host.remote, s, env=env, **kw).run()


def test_a_deploy_writes_the_new_colours_file_before_prepare_from_stdin_and_each_colour_keeps_its_own():
    host = FakeHost(running={"blue": ALL})
    host.env_files["blue"] = b"OLD=blue-secret-1\n"
    r = deploy(host)
    assert r.outcome == DEPLOYED
    assert host.env_files == {"blue": b"OLD=blue-secret-1\n", "green": TEXT.encode()}
    assert [cmd for cmd, _ in host.remote.puts] == [state_files.write_env(S, "green")]
    assert host.index("cat > \"$fbg_tmp\"") < host.index("docker compose build")
    for command in host.commands:  # every compose command names its own colour's file
        for color in ("blue", "green"):
            if f"-p app-{color} " in command and "docker compose" in command:
                assert f"f=.fab-bluegreen/app.{color}.env;" in command, command


def every_command(host: FakeHost) -> str:
    return "\n".join(host.commands)


def test_no_command_line_of_any_task_holds_a_value():
    """The text goes on stdin only (Remote.put); never in what `ps` on the host could show."""
    sent = []
    host = FakeHost(running={"blue": ALL})
    assert deploy(host).outcome == DEPLOYED
    sent.append(host)
    host = FakeHost(running={"blue": ALL}, fail=("end=$((",))  # the settle fails: the rollback
    assert deploy(host).outcome == ROLLED_BACK
    sent.append(host)
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}')
    assert deploy(host, Stage).outcome == STAGED
    assert deploy(host, Promote).outcome == DEPLOYED
    sent.append(host)
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}')
    assert deploy(host, Stage).outcome == STAGED
    assert deploy(host, Rollback).outcome == UNSTAGED
    sent.append(host)
    rec = json.dumps({"live": "green", "previous": "blue", "colors": {"blue": {"containers": {
        x: f"idblue{x}" for x in ALL}}}})
    host = FakeHost(running={"blue": ALL, "green": ALL}, record=rec, upstream_port=18002)
    assert deploy(host, Rollback).outcome == DEPLOYED
    sent.append(host)
    host = FakeHost(running={"blue": ALL, "green": ALL}, record='{"live": "green"}', upstream_port=18002)
    assert cleanup.remove(host.remote, S, cleanup.plan(host.remote, S)).outcome == CLEANED
    sent.append(host)
    host = FakeHost(running={"blue": ALL, "green": ALL}, record='{"live": "green"}', upstream_port=18002,
                    queued={"celery": 2})
    assert drain(host.remote, S).outcome == DRAINED
    sent.append(host)
    assert sum(len(h.commands) for h in sent) > 60
    puts = [data for h in sent for _, data in h.remote.puts]
    assert puts and all(data == TEXT.encode() for data in puts)
    for h in sent:
        for value in VALUES + ("DATABASE_URL", "postgres://"):
            assert value not in every_command(h)


def test_a_rollback_runs_the_old_colour_with_its_own_file_and_writes_none():
    rec = json.dumps({"live": "green", "previous": "blue", "colors": {"blue": {"containers": {
        x: f"idblue{x}" for x in ALL}}}})
    host = FakeHost(running={"blue": ALL, "green": ALL}, record=rec, upstream_port=18002)
    host.env_files = {"blue": b"V=old\n", "green": b"V=new\n"}
    assert deploy(host, Rollback).outcome == DEPLOYED
    assert host.remote.puts == [] and host.env_files == {"blue": b"V=old\n", "green": b"V=new\n"}
    start = next(c for c in host.commands if "-p app-blue -f compose.yml start" in c)
    assert "f=.fab-bluegreen/app.blue.env;" in start


def test_cleanup_removes_the_old_colours_file_with_its_containers_and_keeps_the_live_ones():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, record='{"live": "green"}', upstream_port=18002)
    host.env_files = {"blue": b"V=old\n", "green": b"V=new\n"}
    assert cleanup.remove(host.remote, S, cleanup.plan(host.remote, S)).outcome == CLEANED
    assert host.env_files == {"green": b"V=new\n"} and host.state("blue") == {}
    down = next(c for c in host.commands if " down " in c)
    assert down.index(" down ") < down.index("rm -f .fab-bluegreen/app.blue.env")  # after its containers are gone


def test_the_dry_run_says_how_many_keys_from_where_never_a_value(capsys):
    dry = DryRunRemote(FakeHost(running={"blue": ALL}).remote)
    r = Deploy(dry, S, env=ENV).run()
    assert r.outcome == DRY_RUN
    r.plan = [line for _, line in dry.plan]
    report.plans([r])
    out = capsys.readouterr().out
    assert "on its standard input: 'secrets: 3 keys from secrets/prod.env'" in out
    assert not any(value in out for value in VALUES)


def test_a_value_the_app_prints_is_masked_in_the_progress_the_table_and_the_history():
    mask.hide(ENV.values)
    s = replace(S, hooks=Hooks(after_front=("{compose} exec -T web printenv API_TOKEN",),
                               on_failure=("{compose} logs web",)))
    host = FakeHost(running={"blue": ALL}, fail=("end=$((",))
    real = host.answer

    def answer(command: str):
        exited, out = real(command)
        if "printenv API_TOKEN" in command or " logs " in command:
            out += "tok en$with$dollars\nDATABASE_URL=postgres://app:Xy7-db-pass@db/app\n"
        return exited, out

    host.remote.answer = answer
    console = Console(file=io.StringIO(), width=400)
    r = Deploy(host.remote, s, report.Progress(console).for_host("pi5"), env=ENV).run()
    assert r.outcome == ROLLED_BACK
    r.log_tail = host.remote.answer(compose.logs(s, "green", "web"))[1]  # as the failing service's log lines would show
    report.failure_details([r], console)
    console.print(report.deploy_table([r]))
    shown = console.file.getvalue()
    assert "printenv API_TOKEN" in shown and "pi5    ***\n" in shown  # the hook printed the value: masked
    assert not any(value in shown for value in VALUES)
    assert not any(value in c for value in VALUES for c in host.commands)  # the history lines fab sent


def test_a_rollback_or_promote_masks_what_the_colour_it_runs_was_given_too():
    """The run read today's secrets; the colour it goes back to (or promotes) was given others."""
    rec = json.dumps({"live": "green", "previous": "blue", "colors": {"blue": {"containers": {
        x: f"idblue{x}" for x in ALL}}}})
    s = replace(S, hooks=Hooks(after_switch=("{compose} exec -T web printenv OLD",)))
    for task, host in ((Rollback, FakeHost(running={"blue": ALL, "green": ALL}, record=rec, upstream_port=18002)),
                       (Promote, FakeHost(running={"blue": ALL, "green": ["web", "redis"]},
                                          record='{"live": "blue", "staged": "green"}'))):
        target = "blue" if task is Rollback else "green"
        host.env_files = {target: b"# given before\nOLD='old-value-of-" + target.encode() + b"'\n"}
        real = host.answer
        host.remote.answer = lambda c, real=real, target=target: (
            (0, f"old-value-of-{target}\n") if "printenv OLD" in c else real(c))
        console = Console(file=io.StringIO(), width=400)
        r = task(host.remote, s, report.Progress(console).for_host("pi5"), env=ENV).run()
        assert r.outcome == DEPLOYED, r.reason
        shown = console.file.getvalue()
        assert "pi5    ***\n" in shown and f"old-value-of-{target}" not in shown
        assert host.remote.puts == []  # nothing written: the colour keeps what it was given


# --- the secrets command's lifetime: a timeout or Ctrl-C ends all it started (issue 19, item 13) ------

def gone(pid_file) -> bool:
    """The process whose pid the file holds is gone (or dead, not yet reaped)."""
    import os
    import time

    stat_file = f"/proc/{pid_file.read_text().strip()}/stat"
    for _ in range(20):
        if not os.path.exists(stat_file) or open(stat_file).read().rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.1)
    return False


def test_a_secrets_command_that_times_out_is_ended_with_what_it_started(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(secrets_config, "COMMAND_TIMEOUT", 1.0)
    s = HostSettings(name="h1", ssh="h1", secrets=Secrets(command="sleep 15 & echo $! > child.pid; wait; echo A=1",
                                                          base=str(tmp_path), origin="hosts.toml: defaults.secrets"))
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^hosts.toml: defaults.secrets: did not finish within 1 s$"):
        secrets_config.for_hosts([s])
    assert time.monotonic() - started < 5
    assert gone(tmp_path / "child.pid")  # the sleep it started is ended too


def test_ctrl_c_while_the_secrets_command_runs_is_exit_130_and_ends_it(tmp_path, tripwire):
    import signal
    import subprocess
    import time

    from .test_cli import FAB, ROOT

    (tmp_path / "hosts.toml").write_text(
        '[defaults]\nconnect_timeout = 1\n'
        '[defaults.secrets]\ncommand = "sleep 30 & echo $! > child.pid; wait; echo A=1"\n'
        f'[hosts.h1]\nssh = "deploy@127.0.0.1:{tripwire.getsockname()[1]}"\n')
    proc = subprocess.Popen([str(FAB), "--search-root", str(ROOT), "deploy", "--host", "h1"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text().strip():
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to fab (the command is in its own session)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err == "error: interrupted (Ctrl-C) while hosts.toml: defaults.secrets.command ran: nothing ran on any " \
                  "host\n", err
    assert gone(tmp_path / "child.pid")
    with pytest.raises(BlockingIOError):
        tripwire.accept()  # no host was contacted
