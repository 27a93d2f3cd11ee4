"""Hostile values in hosts.toml, as a class: no value reaches a shell unquoted.

Every string key of hosts.toml is one of three kinds (README, "Security"):
- raw shell, by design: prepare, the hooks, switch.reload, switch.command (and secrets.command, which
  runs on the workstation);
- validated against a strict pattern: names, app, switch.mode, the absolute paths, ssh; a hostile
  value is a one-line error naming the key (exit code 2);
- anything on one line, passed to the shell quoted: dir, compose_file, compose, health.path,
  switch.verify_url (and ssh_config, secrets.env_file and build.source, which only fab reads);
- the workstation's own, never sent to a host: notify.webhook (urllib), notify.command and
  secrets.command (local shell commands, raw by design; tests/unit/test_notify.py).

The last kind is filled with hostile values that pass validation; every command line of a deploy,
a rollback, a cleanup, a drain, status, check, history and logs is built from them (the real
sequences against tests/unit/fakehost.FakeHost), and each goes through a real `sh -n` and `bash -n`
(and a reader of sh's quoting: none of what the values spell stands outside single quotes).
The builders then run in a real `sh` on tests/unit/sandbox.Sandbox: nothing the hostile values
spell may run, and each value must reach docker, curl or the files as one argument, intact."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tasks.config import loader
from tasks.config.schema import HostSettings
from tasks.errors import ConfigError
from tasks.host import check, cleanup, inspect
from tasks.config.secrets import SecretEnv
from tasks.host.deploy import Deploy, Promote, Rollback, Stage
from tasks.host.drain import drain
from tasks.host.remote import DryRunRemote
from tasks.result import CLEANED, DEPLOYED, DRAINED, DRY_RUN, ROLLED_BACK, STAGED, UNSTAGED
from tasks.shell import base, broker, compose, cpu, guard, health, hooks, journal, nginx, probe, record, site
from tasks.shell import state as state_files

from .fakehost import FakeHost
from .sandbox import Sandbox

# the shell's every special character; `touch PWNED...`, `> PWNED...` and `pwned` leave a file if run
H = "$(touch PWNED1) `touch PWNED2` 'q' \"dq\" \\ ; touch PWNED3 & ( * ? | > PWNED4 < ${IFS} ~ #x"
U = "$(pwned)&pwned;pwned'(x)*?=~!@,+"  # what a URL or URL path may hold of them
HEALTH_PATH = "/status?q=(ready)&" + U
VERIFY_URL = "http://127.0.0.1/v?x=" + U + "#frag"
DIR = "~/-app " + H  # a leading '-' where one is allowed: a folder in HOME
DIRS = {  # dir in each of its forms: under HOME (~/), absolute ({root}: the test's folder), relative to HOME
    "home": DIR, "absolute": "{root}/abs dir $HOME ${IFS} $(touch PWNED5) `touch PWNED6`",
    "relative": "rel dir $HOME ${IFS} $(touch PWNED7) `touch PWNED8`"}
COMPOSE_FILE = f"sub dir/c {H}.yml"
# one word of `compose` (e.g. a --profile), with spaces, written in double quotes: sh would expand
# what shlex reads as literal text, so the compose command must reach the host as shlex.join() quotes it
COMPOSE_WORD = H.replace('"dq" ', "").replace("\\ ", "")
MESSAGE = H  # --message: into the lock's info and the history
TOKEN = "0123456789abcdef0123456789abcdef"
ALL = ["web", "redis", "worker", "beat"]

RAW = {"prepare", "hooks.after_front", "hooks.after_switch", "hooks.on_failure", "switch.reload", "switch.command",
       "secrets.command"}
QUOTED = {"dir", "compose_file", "compose", "health.path", "switch.verify_url", "ssh_config", "secrets.env_file",
          "build.source"}
STRICT = {"ssh", "app", "front", "background", "shared", "switch.mode", "switch.upstream_file",
          "switch.upstream_name", "switch.pid_file", "warmup.services", "broker.service", "broker.queues",
          "broker.workers", "build.where", "build.builder", "build.services", "health.host", "upload"}
LOCAL = {"notify.webhook", "notify.command"}  # [defaults.notify]: no HostSettings field, no host sees them
STRING_KINDS = {"str", "path", "abspath", "command", "url", "urlpath", "switch_mode", "name", "project", "service",
                "strings", "names", "names+", "webhook", "build_where", "builder", "hostname", "files"}


def string_keys() -> set[str]:
    keys = {"ssh"} | {k for k, kind in loader._HOST_KEYS.items() if kind in STRING_KINDS}
    for table, (_, schema) in loader._TABLES.items():
        keys |= {f"{table}.{k}" for k, kind in schema.items() if kind in STRING_KINDS}
    return keys


def test_every_string_key_is_raw_shell_strictly_validated_or_quoted():
    assert string_keys() == RAW | QUOTED | STRICT | LOCAL  # a new key must be put in one of them, and tested
    assert not {key.split(".")[0] for key in LOCAL} & set(HostSettings.__dataclass_fields__)


def hosts_toml(root: Path, dir_: str = DIR, **switch) -> str:
    q = json.dumps
    dir_ = dir_.replace("{root}", str(root))
    switch = {"upstream_file": f"{root}/etc/nginx/up@+-stream.conf", "pid_file": f"{root}/run/n@g+inx-.pid",
              "verify_url": VERIFY_URL, "reload_timeout": 5, **switch}
    return f"""
[defaults]
dir = {q(dir_)}
compose_file = {q(COMPOSE_FILE)}
compose = {q('docker compose --profile "' + COMPOSE_WORD + '"')}
ssh_config = {q(H + ".config")}
shared = ["broker"]
prepare = ["true"]
settle = 0
stop_timeout = 1
[defaults.health]
path = {q(HEALTH_PATH)}
retries = 2
interval = 0
[defaults.switch]
{chr(10).join(f"{k} = {q(v)}" for k, v in switch.items())}
[defaults.hooks]
after_front = ["{{compose}} config --services"]
after_switch = ["{{compose}} ps"]
on_failure = ["{{compose}} ps"]
[defaults.warmup]
seconds = 0.2
[defaults.broker]
drain_timeout = 1
[defaults.secrets]
env_file = {q(H + ".env")}
[hosts.h1]
ssh = "h1"
"""


def load(root: Path, dir_: str = DIR, **switch) -> HostSettings:
    path = root / "hosts.toml"
    path.write_text(hosts_toml(root, dir_, **switch))
    return loader.load(path).hosts["h1"]


def test_the_hostile_values_pass_validation_intact(tmp_path):
    s = load(tmp_path)
    assert (s.dir, s.compose_file, s.health.path, s.switch.verify_url) == (DIR, COMPOSE_FILE, HEALTH_PATH, VERIFY_URL)
    assert shlex.split(s.compose) == ["docker", "compose", "--profile", COMPOSE_WORD]
    assert s.ssh_config == str(tmp_path / (H + ".config"))
    assert (s.secrets.env_file, s.secrets.base) == (H + ".env", str(tmp_path))


# --- the validator: a hostile value in a strictly validated key is one line, exit code 2 ----------

HOSTILE = ["$(touch X)", "`touch X`", "a'b", 'a"b', "a;b", "a\nb", "a\n", "a b", "a(b", "a*", "-a", "a?b", "a&b", "a|b",
           "a>b", "a$b", "a\\b", "a\x1b]0;x\x07b"]
WRITTEN = {  # key -> how a hostile value is written there
    "app": lambda v: v, "front": lambda v: ["web", v], "background": lambda v: [v], "shared": lambda v: [v],
    "switch.mode": lambda v: "nginx" + v, "switch.upstream_file": lambda v: "/etc/nginx/" + v,
    "switch.pid_file": lambda v: "/run/" + v, "switch.upstream_name": lambda v: v,
    "warmup.services": lambda v: [v], "broker.service": lambda v: v, "broker.queues": lambda v: [v],
    "broker.workers": lambda v: [v], "ssh": lambda v: v if v.startswith("-") else "h1" + v,
    "build.where": lambda v: "local" + v, "build.builder": lambda v: "ssh://" + v, "build.services": lambda v: [v],
    "health.host": lambda v: v + ".example", "upload": lambda v: [v],  # upload: a local file, named on the host by its name
}


def host_toml(key: str, value) -> str:
    """A hosts file with one host, h1, whose `key` (e.g. "switch.mode") is `value`."""
    table, _, name = key.rpartition(".")
    own = {"ssh": "h1", **({} if table else {name: value})}
    text = "[hosts.h1]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in own.items())
    return text + (f"[hosts.h1.{table}]\n{name} = {json.dumps(value)}\n" if table else "")


@pytest.mark.parametrize("key", sorted(STRICT))
def test_a_strictly_validated_key_refuses_every_hostile_value_in_one_line_naming_it(tmp_path, key):
    path = tmp_path / "hosts.toml"
    for value in HOSTILE:
        if value == "-a" and key in ("switch.upstream_file", "switch.pid_file"):
            continue  # "/run/-a": a '-' after the leading '/' is no option (and the path is quoted anyway)
        path.write_text(host_toml(key, WRITTEN[key](value)))
        with pytest.raises(ConfigError) as e:
            loader.load(path)
        message = str(e.value)
        assert e.value.exit_code == 2
        assert "\n" not in message and "\x1b" not in message, (key, value, message)
        assert f"hosts.h1.{key}:" in message or f"hosts.h1.{key}[0]:" in message, (key, value, message)


@pytest.mark.parametrize("key", sorted(QUOTED - {"ssh_config"}))
def test_a_quoted_key_still_refuses_a_second_line_and_control_characters(tmp_path, key):
    path = tmp_path / "hosts.toml"
    for bad in ("/a\nb", "/a\x1b]52;c;eA==\x07", "/a\rb"):
        path.write_text(host_toml(key, "http://h" + bad if key == "switch.verify_url" else bad))
        with pytest.raises(ConfigError) as e:
            loader.load(path)
        assert "\n" not in str(e.value) and f"hosts.h1.{key}:" in str(e.value)


@pytest.mark.parametrize("command", ["flip {color.__class__}", "flip {color!r}", "flip {port:>99999999999}",
                                     "flip {color[0]}", "flip {0}", "flip {}", "flip {colour}"])
def test_switch_command_fills_in_exactly_color_and_port_nothing_else(tmp_path, command):
    """Its {color} and {port} are the tool's checked values: no attribute, index, conversion or
    format spec may turn them into other text (`<class 'str'>`) or a gigabyte of spaces."""
    path = tmp_path / "hosts.toml"
    path.write_text(f'[hosts.h1]\nssh = "h1"\nswitch = {{ mode = "command", command = {json.dumps(command)} }}\n')
    with pytest.raises(ConfigError, match=r"hosts\.h1\.switch\.command: only \{color\} and \{port\} may be filled in"):
        loader.load(path)
    path.write_text('[hosts.h1]\nssh = "h1"\nswitch = { mode = "command", command = "flip {color} {port} {{x}}" }\n')
    assert nginx.switch_command(loader.load(path).hosts["h1"], "green") == "flip green 18002 {x}"


def test_fab_says_so_in_one_line_with_exit_code_2_and_runs_nothing(tmp_path):
    from .test_cli import FAB, ROOT

    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.h1]\nssh = "h1"\nswitch = { upstream_file = "/etc/$(touch PWNED5).conf" }\n')
    r = subprocess.run([str(FAB), "--search-root", str(ROOT), "check", "--all", "--hosts-file", str(path)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "hosts.h1.switch.upstream_file:" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout and not list(tmp_path.rglob("PWNED*"))


# --- every command line of every task, built from the hostile values, is valid sh -----------------

def fake(s, **kw) -> FakeHost:
    return FakeHost(settings=s, **kw)


def rollback_record() -> str:
    return json.dumps({"live": "green", "previous": "blue", "colors": {"blue": {"containers": {
        x: f"idblue{x}" for x in ALL}}}})


def every_command_line(s: HostSettings) -> list[str]:
    """Drive every task against fake hosts with these settings; every command line they sent."""
    lines: list[str] = []
    env = SecretEnv(H, b"A=1\n", ("A",), ("1",)) if s.secrets.configured else None
    host = fake(s, running={"blue": ALL})
    assert Deploy(host.remote, s, message=MESSAGE, env=env).run().outcome == DEPLOYED
    lines += host.commands
    host = fake(s, running={"blue": ALL}, record='{"live": "blue"}')
    assert Stage(host.remote, s, message=MESSAGE, env=env).run().outcome == STAGED
    assert Promote(host.remote, s, message=MESSAGE).run().outcome == DEPLOYED
    lines += host.commands
    host = fake(s, running={"blue": ALL}, record='{"live": "blue"}')
    assert Stage(host.remote, s, env=env).run().outcome == STAGED
    assert Rollback(host.remote, s, message=MESSAGE).run().outcome == UNSTAGED
    lines += host.commands
    host = fake(s, running={"blue": ALL}, fail=("end=$((",))  # the settle check fails: the rollback
    assert Deploy(host.remote, s, message=MESSAGE).run().outcome == ROLLED_BACK
    lines += host.commands
    host = fake(s)  # a first deploy, to blue
    assert Deploy(host.remote, s).run().outcome == DEPLOYED
    lines += host.commands
    host = fake(s, running={"blue": ALL})
    dry = DryRunRemote(host.remote)
    result = Deploy(dry, s, env=env).run()
    assert result.outcome == DRY_RUN
    lines += [line for _, line in dry.plan]
    host = fake(s, running={"blue": ALL, "green": ALL}, record=rollback_record(), upstream_port=18002)
    assert Rollback(host.remote, s, message=MESSAGE).run().outcome == DEPLOYED
    lines += host.commands
    host = fake(s, running={"blue": ALL, "green": ALL}, record='{"live": "green"}', upstream_port=18002)
    planned = cleanup.plan(host.remote, s)
    assert cleanup.remove(host.remote, s, planned, prune_images=True).outcome == CLEANED
    lines += host.commands
    host = fake(s, running={"blue": ALL, "green": ALL}, record='{"live": "green"}', upstream_port=18002,
                queued={"celery": 3})
    assert drain(host.remote, s, message=MESSAGE).outcome == DRAINED
    lines += host.commands
    host = fake(s, running={"blue": ALL}, record='{"live": "blue"}')
    assert inspect.status(host.remote, s).ok
    check.preflight(host.remote, s)
    inspect.history(host.remote, s, 20)
    inspect.logs(host.remote, s, "web", "green", 50)
    lines += host.commands
    lines += [site.facts(s), site.apply(s, True, True, "/etc/nginx/sites-available/app",  # fab setup
                                        site.site_text(s, ["pi5", "192.0.2.7"]), "/etc/nginx/sites-enabled/app")]
    return lines


def settings_variants(root: Path) -> list[HostSettings]:
    return [load(root), load(root, mode="command", command="flip {color} {port}"), load(root, mode="none"),
            load(root, DIRS["absolute"]), load(root, DIRS["relative"])]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_every_command_line_of_every_task_parses(tmp_path, shell):
    lines = [line for s in settings_variants(tmp_path) for line in every_command_line(s)]
    assert len(lines) > 80
    for line in dict.fromkeys(lines):
        res = subprocess.run([shell, "-n", "-c", line], capture_output=True, text=True, cwd=tmp_path)
        assert res.returncode == 0, f"{res.stderr}\n{line}"
    assert not list(tmp_path.rglob("PWNED*"))


def test_no_command_line_holds_a_hostile_value_unquoted(tmp_path):
    """Statically: outside single quotes, no line holds the `$(`, backquote or `;` of a hostile value.
    (A quoted value may sit inside an `sh -c '...'` body: that body is quoted again, and runs below.)"""
    for s in settings_variants(tmp_path):
        for line in every_command_line(s):
            for needle in ("$(touch PWNED", "`touch PWNED", "; touch PWNED", "$(pwned)", ";pwned"):
                for at in _find_all(line, needle):
                    assert _inside_single_quotes(line, at), f"{needle!r} unquoted at {at}:\n{line}"


def _find_all(text: str, needle: str) -> list[int]:
    found, at = [], text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _inside_single_quotes(line: str, at: int) -> bool:
    """Whether position `at` of a sh line is inside '...': a small reader of sh's quoting ('...',
    "...", backslashes, and $(...) and $((...)) opening a new level, inside double quotes too)."""
    stack = ["top"]  # top | cmd: $(...) | arith: $((...)) | dq: "..." | sq: '...'
    i = 0
    while i < at:
        c, top = line[i], stack[-1]
        if top == "sq":
            if c == "'":
                stack.pop()
        elif c == "\\":
            i += 1
        elif line.startswith("$((", i):
            stack.append("arith")
            i += 2
        elif line.startswith("$(", i):
            stack.append("cmd")
            i += 1
        elif top == "dq":
            if c == '"':
                stack.pop()
        elif c == "'":
            stack.append("sq")
        elif c == '"':
            stack.append("dq")
        elif top == "arith" and line.startswith("))", i):
            stack.pop()
            i += 1
        elif top == "cmd" and c == ")":
            stack.pop()
        i += 1
    return stack[-1] == "sq"


# --- the builders, run by a real sh with fake programs: nothing runs, every value arrives intact -----

@pytest.fixture(params=sorted(DIRS))
def box(tmp_path, request):
    sandbox = Sandbox(tmp_path)
    s = load(tmp_path, DIRS[request.param])
    app = sandbox.home / (s.dir[2:] if s.dir.startswith("~/") else s.dir)  # an absolute dir stays as it is
    (app / "sub dir").mkdir(parents=True)
    (app / COMPOSE_FILE).write_text("services: {}\n")
    Path(s.switch.upstream_file).parent.mkdir(parents=True)
    Path(s.switch.upstream_file).write_text(nginx.upstream_text(s, 18001))
    sandbox.start_nginx(Path(s.switch.pid_file))
    yield sandbox, s, app
    sandbox.stop()


def builders(s: HostSettings) -> dict[str, str]:
    info = record.dump({"who": "ann@laptop", "task": "deploy", "message": MESSAGE, "token": TOKEN})
    return {
        "stop": compose.stop(s, "blue", ("worker", "beat")),
        "stop_reporting": compose.stop_reporting(s, "blue", ("worker", "beat")),
        "up": compose.up(s, "green", ("web", "redis")),
        "start": compose.start(s, "blue", ("worker",)),
        "up_shared": compose.up_shared(s),
        "down": compose.down(s, "blue"),
        "remove": compose.remove(s, "blue"),
        "write_env": state_files.write_env(s, "green"),
        "logs": compose.logs(s, "green", "web", 5),
        "prepare": hooks.prepare(s, "green", "true"),
        "hook": hooks.hook(s, "green", "blue", "{compose} config --services"),
        "facts": probe.facts(s),
        "status": probe.status(s),
        "history": state_files.history(s, 5),
        "wait_healthy": health.wait_healthy(s, "green"),
        "wait_settled": health.wait_settled(s, "green", ("worker",)),
        "count_queued": broker.count_queued(s, "blue"),
        "wait_drained": broker.wait_drained(s, "blue", 1),
        "preflight": probe.preflight(s),
        "switch_back": nginx.switch_nginx(s, nginx.upstream_text(s, 18001), nginx.upstream_text(s, 18002),
                                        unless_workers="1 2"),
        "switch": nginx.switch_nginx(s, nginx.upstream_text(s, 18002), None),
        "verify": nginx.verify(s),
        "lock": state_files.lock(s, info),
        "look_lock": state_files.look_lock(s),  # fab unlock: what it shows, then what it removes
        "force_unlock": state_files.force_unlock(s, TOKEN, "0"),
        "record": state_files.write_record(s, record.dump({"live": "green", "note": MESSAGE})),
        "history_line": state_files.append_history(s, record.history_line("deploy", "h1", "deployed", message=MESSAGE)),
        "sampler": f"{cpu.start_sampler(s)}; sleep 0.3; {cpu.stop_sampler(s)}",
        "capped": f"{cpu.start_capped(s, 'green', ('worker', 'beat'), 0.5, s.warmup.seconds)}\nsleep 0.8",
        "lift_stuck": cpu.lift_stuck(s),
        "cancel_lift": cpu.cancel_lift(s, "green"),
        "guard": (f"{state_files.lock(s, info)} && {journal.append(s, 1, journal.Entry('stop ' + MESSAGE, compose.stop(s, 'green')))} "
                  f"&& {guard.arm(s, TOKEN, 60)} && {{ {base.in_dir(s, guard.heartbeat(s, TOKEN, 60))}; "
                  f"{guard.disarm(s, TOKEN)}; {journal.show(s)}; {journal.put_back(s)}; {state_files.unlock(s, TOKEN)}; }}"),
        "unlock": state_files.unlock(s, TOKEN),
        "remove_images": compose.remove_images(["sha256:" + H]),
        "logs_task": compose.compose(s, "green", "logs", "--no-color", "--tail", "5", "web"),
    }


def test_the_builders_run_by_a_real_sh_run_nothing_hostile_and_pass_each_value_intact(box):
    sandbox, s, app = box
    said = {name: sandbox.sh(line) for name, line in builders(s).items()}
    assert sandbox.pwned() == []
    failed = {name: (r.returncode, r.stdout[-300:], r.stderr[-300:]) for name, r in said.items() if r.returncode}
    assert set(failed) == {"wait_settled"}, failed  # no container runs on the fake host: the others pass
    assert said["lock"].stdout == "acquired\n" and said["guard"].stdout == (
        f"acquired\n{base.MARK}disarmed\n{journal.SHOWN}{' '.join(('stop ' + MESSAGE).split())}\n")
    assert json.dumps(MESSAGE) in said["look_lock"].stdout and said["force_unlock"].stdout == "removed\n"
    assert said["capped"].stdout == "capped\n" and said["count_queued"].stdout == "celery 0\nunacked 0\n"
    assert "ok compose v2.20.0" in said["preflight"].stdout and "fail" not in said["preflight"].stdout
    # the warm-up cap's lift (after 0.2 s) ran detached, from the file start_capped wrote
    assert ["docker", "update", "--cpu-period", "100000", "--cpu-quota", "-1", "id-worker"] in [
        argv for _, argv in sandbox.calls("docker")]
    assert sandbox.pwned() == []

    compose = [(pwd, argv) for pwd, argv in sandbox.calls("docker") if argv[1:2] == ["compose"]]
    assert len(compose) >= 10
    for pwd, argv in compose:
        if "version" in argv:  # the pre-flight's `docker compose --profile WORD version`, in HOME
            assert argv[1:4] == ["compose", "--profile", COMPOSE_WORD]
            continue
        assert pwd == str(app), argv  # cd into dir, with '~' as HOME
        assert argv[1:7] == ["compose", "--profile", COMPOSE_WORD, "-p", argv[5], "-f"], argv
        assert argv[5] in ("app-blue", "app-green", "app-shared") and argv[7] == COMPOSE_FILE, argv
    assert any(argv[-2:] == ["config", "--services"] for _, argv in compose)  # the hook's {compose}

    urls = [argv[-1] for _, argv in sandbox.calls("curl")]
    assert "http://127.0.0.1:18002" + HEALTH_PATH in urls  # the health check, one argument, intact
    assert "http://127.0.0.1:18001" + HEALTH_PATH in urls and "http://127.0.0.1:18002" + HEALTH_PATH in urls  # status
    assert VERIFY_URL in urls  # through nginx after the switch
    assert urls and set(urls) <= {VERIFY_URL, "http://127.0.0.1:18001" + HEALTH_PATH,
                                  "http://127.0.0.1:18002" + HEALTH_PATH}

    assert Path(s.switch.upstream_file).read_text() == nginx.upstream_text(s, 18002)
    assert any(argv == ["nginx", "-s", "reload"] for _, argv in sandbox.calls("nginx"))  # the reload ran
    assert any(argv[-2:] == ["rm", "sha256:" + H] for _, argv in sandbox.calls("docker"))

    state = app / state_files.STATE_DIR
    assert json.loads((state / "app.json").read_text()) == {"live": "green", "note": MESSAGE}
    assert (state / "app.green.env").read_text() == "" and (state / "app.green.env").stat().st_mode & 0o777 == 0o600
    assert json.loads((state / "app.history.jsonl").read_text().splitlines()[-1])["message"] == MESSAGE
    assert not (state / "app.lock").exists()  # taken with MESSAGE in its info, freed by its token


def test_the_lock_keeps_the_message_intact(box):
    sandbox, s, app = box
    info = record.dump({"who": "ann@laptop", "task": "deploy", "message": MESSAGE, "token": TOKEN})
    assert sandbox.sh(state_files.lock(s, info)).stdout == "acquired\n"
    held = sandbox.sh(state_files.lock(s, info))
    assert held.returncode == 3 and json.loads(held.stdout.splitlines()[1])["message"] == MESSAGE
    assert sandbox.pwned() == []


def test_the_error_branches_run_nothing_hostile_either(box):
    """Every fake fails (sudo refused, docker down, curl without answer): the lines that say why."""
    sandbox, s, _ = box
    for name, line in builders(s).items():
        sandbox.sh(line, fail=True)
    time.sleep(0.2)
    assert sandbox.pwned() == []
    said = sandbox.sh(probe.preflight(s), fail=True).stdout
    assert f"fail compose docker compose --profile {shlex.quote(COMPOSE_WORD)} does not run: " in said


@pytest.mark.parametrize("path", ["/status?q=(ready)", "/health/", "/a;b&c=$(d)'e'*"])
def test_a_harmless_health_path_with_brackets_works(box, path):
    sandbox, s, _ = box
    (sandbox.root / "hosts.toml").write_text(
        hosts_toml(sandbox.root, s.dir, verify_url="").replace(json.dumps(HEALTH_PATH), json.dumps(path)))
    s = loader.load(sandbox.root / "hosts.toml").hosts["h1"]
    assert nginx.verify_url(s) == "http://127.0.0.1" + path
    sandbox.forget()
    switch = f"{nginx.switch_nginx(s, nginx.upstream_text(s, 18002), None)} && {{ {nginx.verify(s)}; }}"
    res = sandbox.sh(switch)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [argv[-1] for _, argv in sandbox.calls("curl")] == ["http://127.0.0.1" + path]
