"""hosts.toml parsing: defaults, overrides, and one clear error per defect (no SSH)."""

from pathlib import Path

import pytest

from tasks.config import loader, schema
from tasks.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


def test_the_documented_example_loads():
    inv = loader.load(ROOT / "hosts.toml")
    assert list(inv.hosts) == ["h1", "h2", "h3"]
    h3 = inv.hosts["h3"]
    assert h3.health.retries == 20 and h3.health.path == "/health/"  # one key overridden, others kept
    assert h3.ssh_config == str(ROOT / ".bed" / "ssh_config")
    assert inv.groups == {"demo": ("h1", "h2")}


def test_only_ssh_is_required_and_defaults_match_the_contract(tmp_path):
    s = loader.load(write(tmp_path, '[hosts.pi5]\nssh = "pi5"\n')).hosts["pi5"]
    assert (s.app, s.dir, s.compose_file, s.compose) == ("app", "~/app", "compose.yml", "docker compose")
    assert s.front == ("web", "redis") and s.background == ("worker", "beat") and s.web == "web"
    assert (s.stop_timeout, s.settle, s.prepare) == (30, 5, ())
    assert (s.port("blue"), s.port("green")) == (18001, 18002)
    assert s.health == schema.Health("/health/", 10, 1.0, 2.0, 0.0)
    assert s.switch.mode == "nginx" and s.switch.upstream_name == "app_backend"
    assert s.switch.reload == "sudo nginx -s reload" and s.connect_timeout == 10


def test_host_table_overrides_defaults_key_by_key(tmp_path):
    inv = loader.load(write(tmp_path, """
[defaults]
stop_timeout = 12
[defaults.health]
retries = 3
[hosts.a]
ssh = "deploy@203.0.113.7:2222"
health = { path = "/healthz" }
settle = 1.5
[hosts.b]
ssh = "b"
stop_timeout = 4.0
"""))
    a, b = inv.hosts["a"], inv.hosts["b"]
    assert a.health.path == "/healthz" and a.health.retries == 3
    assert a.stop_timeout == 12 and a.settle == 1.5
    assert b.stop_timeout == 4 and b.health.path == "/health/"


BAD = [
    ('[defaults]\nstop_timout = 3\n[hosts.a]\nssh = "a"\n', "defaults.stop_timout: unknown key"),
    ('[hosts.a]\nssh = "a"\nhealth = { retries = "ten" }\n', "hosts.a.health.retries: expected a number"),
    ('[hosts.a]\nssh = "a"\nhealth = { retries = 2.5 }\n', "hosts.a.health.retries: expected a whole number"),
    ('[hosts.a]\nssh = "a"\n[groups]\nedge = ["a", "b"]\n', "groups.edge: unknown host 'b'"),
    ('[hosts.a]\nssh = "a"\nports = { green = 18001 }\n', "hosts.a.ports: blue and green both use port 18001"),
    ('[hosts."pi 5"]\nssh = "a"\n', "hosts.pi 5: host name 'pi 5' may hold only"),
    ('[hosts.a]\nssh = "a"\nfront = ["web;rm"]\n', "hosts.a.front: name 'web;rm' may hold only"),
    ('[hosts.a]\nport = 22\nssh = "a"\n', "hosts.a.port: unknown key"),
    ('[hosts.a]\nhealth = {}\n', "hosts.a.ssh: missing"),
    ('[hosts.a]\nssh = "a b"\n', "hosts.a.ssh: 'a b' is not an ssh alias"),
    ('[hosts.a]\nssh = "a"\nswitch = { mode = "haproxy" }\n', "hosts.a.switch.mode: 'haproxy': expected one of"),
    ('[hosts.a]\nssh = "a"\napp = "My App"\n', "hosts.a.app: 'My App': use lowercase"),
    ('[hosts.a]\nssh = "a"\nstop_timeout = true\n', "hosts.a.stop_timeout: expected a number, got True"),
    ('[hosts.a]\nssh = "a"\nbackground = ["web"]\n', "hosts.a.background: ['web'] also listed in front"),
    ('[hosts.a]\nssh = "a"\nswitch = { mode = "command" }\n', "hosts.a.switch.command: mode \"command\" needs"),
    ('[hosts.a]\nssh = "a"\nswitch = { mode = "command", command = "x {colour}" }\n',
     "hosts.a.switch.command: only {color} and {port}"),
    ('[hosts.a]\nssh = "a"\n[defaults]\nprepare = "git pull"\n', "defaults.prepare: expected a list of strings"),
    ('[hosts]\na = 3\n', "hosts.a: expected a table"),
    ('[hosts.a]\nssh = "a"\nshared = "redis"\n', "hosts.a.shared: expected a list of strings"),
    ('[hosts.a]\nssh = "a"\nbroker = { service = "worker" }\n', "hosts.a.broker.service: 'worker' is not a front"),
    ('[hosts.a]\nssh = "a"\nbroker = { queues = ["a b"] }\n', "hosts.a.broker.queues: name 'a b' may hold only"),
    ('[hosts.a]\nssh = "a"\nbroker = { workers = ["web"] }\n', "hosts.a.broker.workers: ['web'] are not background"),
    ('[defaults]\nbroker = { drain_timeout = 0 }\n[hosts.a]\nssh = "a"\n', "defaults.broker.drain_timeout: 0"),
    ('[hosts.a]\nssh = "a"\nbroker = { queue = ["celery"] }\n', "hosts.a.broker.queue: unknown key"),
    ('[hosts.a]\nssh = "a"\nbroker = { db = -1 }\n', "hosts.a.broker.db: -1 is out of range 0..1000"),
    ('[hosts.a\nssh = "a"\n', "not valid TOML"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_each_defect_is_one_line_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        loader.load(path)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_missing_file_says_how_to_name_another(tmp_path):
    with pytest.raises(ConfigError, match="no such file.*--hosts-file"):
        loader.load(tmp_path / "nope.toml")


def test_selection_unions_hosts_and_groups_in_order(tmp_path):
    inv = loader.load(write(tmp_path, """
[hosts.a]\nssh = "a"\n[hosts.b]\nssh = "b"\n[hosts.c]\nssh = "c"\n[groups]\nbc = ["b", "c"]
"""))
    assert [s.name for s in inv.select(["c"], ["bc"], False)] == ["c", "b"]
    assert [s.name for s in inv.select([], [], True)] == ["a", "b", "c"]


@pytest.mark.parametrize("hosts, groups, message", [
    (["zz"], [], "unknown host 'zz' (known hosts: a, b)"),
    ([], ["zz"], "unknown group 'zz' (known groups: none)"),
    ([], [], "name the hosts to work on: --host NAME, --group NAME or --all"),
])
def test_selection_errors_are_usage_errors_listing_known_names(tmp_path, hosts, groups, message):
    inv = loader.load(write(tmp_path, '[hosts.a]\nssh = "a"\n[hosts.b]\nssh = "b"\n'))
    with pytest.raises(UsageError) as e:
        inv.select(hosts, groups, False)
    assert message in str(e.value) and e.value.exit_code == 2


def test_broker_defaults_follow_front_and_shared(tmp_path):
    inv = loader.load(write(tmp_path, """
[hosts.per_colour]
ssh = "a"
[hosts.shared]
ssh = "b"
front = ["web"]
shared = ["redis"]
[hosts.named]
ssh = "c"
front = ["web", "cache", "queue-redis"]
background = ["worker", "celery-beat", "flower"]
broker = { queues = ["celery", "emails"], workers = ["worker"] }
[hosts.off]
ssh = "d"
broker = { service = "" }
"""))
    per_colour, shared, named, off = (inv.hosts[n] for n in ("per_colour", "shared", "named", "off"))
    assert (per_colour.broker_service, per_colour.broker.queues, per_colour.drain_workers) == ("redis", ("celery",), ("worker",))
    assert (shared.shared, shared.broker_service) == (("redis",), None)  # a shared broker: nothing to count
    assert named.broker_service == "queue-redis" and named.broker.queues == ("celery", "emails")
    assert named.drain_workers == ("worker",)
    assert off.broker_service is None
    # beat never drains, whatever it is called, unless workers names it
    assert schema.HostSettings(name="x", ssh="x", background=("worker", "celery-beat", "flower")).drain_workers == \
        ("worker", "flower")


# --- hostile input: every defect is still one line naming the key, exit code 2 --------------------

def host(extra: str = "", ssh: str = "a") -> str:
    return f'[hosts.a]\nssh = "{ssh}"\n{extra}\n'


HOSTILE = [
    # numbers: TOML's nan and inf, for every kind of number
    (host("guard_deadline = nan"), "hosts.a.guard_deadline: expected a finite number, got nan"),
    (host("connect_timeout = nan"), "hosts.a.connect_timeout: expected a finite number, got nan"),
    (host("stop_timeout = -inf"), "hosts.a.stop_timeout: expected a finite number, got -inf"),
    (host("health = { retries = inf }"), "hosts.a.health.retries: expected a finite number, got inf"),
    (host("ports = { blue = nan }"), "hosts.a.ports.blue: expected a finite number, got nan"),
    (host("broker = { db = inf }"), "hosts.a.broker.db: expected a finite number, got inf"),
    (host("warmup = { cpus = inf }"), "hosts.a.warmup.cpus: expected a finite number, got inf"),
    ('[defaults.switch]\nreload_timeout = nan\n' + host(), "defaults.switch.reload_timeout: expected a finite"),
    # names start with a letter or digit: never read as an option
    ('[hosts."--all"]\nssh = "a"\n', "hosts.--all: host name '--all' may hold only letters, digits, '_', '.' "
                                      "and '-', and starts with a letter or digit"),
    (host() + '[groups]\n"-g" = ["a"]\n', "groups.-g: group name '-g' may hold only"),
    (host('front = ["--build"]'), "hosts.a.front: name '--build' may hold only"),
    (host('background = ["_worker"]'), "hosts.a.background: name '_worker' may hold only"),
    (host('shared = [".broker"]'), "hosts.a.shared: name '.broker' may hold only"),
    (host('warmup = { services = ["-w"] }'), "hosts.a.warmup.services: name '-w' may hold only"),
    (host('broker = { service = "-r" }'), "hosts.a.broker.service: name '-r' may hold only"),
    (host('broker = { queues = ["-q"] }'), "hosts.a.broker.queues: name '-q' may hold only"),
    (host('broker = { workers = ["-w"] }'), "hosts.a.broker.workers: name '-w' may hold only"),
    (host('switch = { upstream_name = "-u" }'), "hosts.a.switch.upstream_name: name '-u' may hold only"),
    (host('app = "-app"'), "hosts.a.app: '-app': use lowercase"),
    # ssh: [user@]host[:port] or an alias, nothing ssh could read as an option
    (host(ssh="-oProxyCommand=touch /tmp/x"), "hosts.a.ssh: '-oProxyCommand=touch /tmp/x' is not an ssh alias or "
                                              "[user@]host[:port]: a host or user may not start with '-'"),
    (host(ssh="-l@host"), "may not start with '-'"),
    (host(ssh="u@-host"), "may not start with '-'"),
    (host(ssh=":"), "hosts.a.ssh: ':' is not an ssh alias or [user@]host[:port]: expected an ssh alias"),
    (host(ssh="u@host:abc"), "hosts.a.ssh: 'u@host:abc' is not an ssh alias or [user@]host[:port]: the port "
                             "'abc' is not a number"),
    (host(ssh="u@host:"), "the port '' is not a number"),
    (host(ssh="u@host:99999"), "port 99999 is out of range 1..65535"),
    (host(ssh="u@host:0"), "port 0 is out of range 1..65535"),
    (host(ssh="@host"), "user '': expected letters"),
    (host(ssh="u@"), "expected an ssh alias or [user@]host[:port]"),
    (host(ssh="a@b@host"), "user 'a@b': expected letters"),
    (host(ssh="::1"), "write an IPv6 address in brackets"),
    (host(ssh="[::1"), "an IPv6 address goes in brackets, then the port"),
    (host(ssh="[::1]22"), "an IPv6 address goes in brackets, then the port"),
    (host(ssh="[10.0.0.1]:22"), "'10.0.0.1' in brackets is not an IPv6 address"),
    (host(ssh="a\\tb"), "hosts.a.ssh: 'a\\tb' is not an ssh alias"),
    # strings: one line, no control characters; paths and URLs of sane characters
    (host('dir = "app\\nrm -rf /"'), "hosts.a.dir: 'app\\nrm -rf /': must be one line, without control"),
    (host('dir = "-app"'), "hosts.a.dir: '-app': must not start with '-'"),
    (host('compose_file = "x\\ty.yml"'), "hosts.a.compose_file: 'x\\ty.yml': must be one line"),
    (host('compose_file = "-"'), "hosts.a.compose_file: '-': must not start with '-'"),
    (host('compose = "docker \'compose"'), "hosts.a.compose: \"docker 'compose\": not a command line"),
    (host('compose = "--rm"'), "hosts.a.compose: '--rm': expected a command"),
    (host('compose = "docker\\u0000compose"'), "hosts.a.compose: 'docker\\x00compose': must be one line"),
    (host('prepare = ["git pull\\nrm -rf /"]'), "hosts.a.prepare: 'git pull\\nrm -rf /': each command is one line"),
    (host('prepare = ["  "]'), "hosts.a.prepare: '  ': each command is one line, not empty"),
    (host('hooks = { after_front = ["a\\rb"] }'), "hosts.a.hooks.after_front: 'a\\rb': each command is one line"),
    (host('switch = { reload = "nginx -s reload\\u001b[2J" }'), "hosts.a.switch.reload: 'nginx -s reload\\x1b[2J': "
                                                                 "must be one line"),
    (host('switch = { command = "a\\nb" }'), "hosts.a.switch.command: 'a\\nb': must be one line"),
    (host('switch = { upstream_file = "/etc/nginx/my upstream.conf" }'), "hosts.a.switch.upstream_file: "
                                                                          "'/etc/nginx/my upstream.conf': expected an absolute path of"),
    (host('switch = { pid_file = "/run/$(id).pid" }'), "hosts.a.switch.pid_file: '/run/$(id).pid': expected an absolute"),
    (host('switch = { pid_file = "run/nginx.pid" }'), "hosts.a.switch.pid_file: 'run/nginx.pid': expected an absolute"),
    (host('health = { path = "/health check" }'), "hosts.a.health.path: '/health check': expected a path starting"),
    (host('health = { path = "/h\\"ealth" }'), "hosts.a.health.path: '/h\"ealth': expected a path starting"),
    (host('switch = { verify_url = "http://x/`id`" }'), "hosts.a.switch.verify_url: 'http://x/`id`': expected an http"),
    (host('ssh_config = "a\\nb"'), "hosts.a.ssh_config: 'a\\nb': must be one line"),
    (host('ssh_config = "~no-such-user-here/config"'), "hosts.a.ssh_config: '~no-such-user-here/config': "),
    # keys come from the file too: a control character in one is shown escaped, on the one line
    (host('"x\\ny" = 1'), "hosts.a.x\\ny: unknown key"),
    ('[hosts."a\\nb"]\nssh = "a"\n', "hosts.a\\nb: host name 'a\\nb' may hold only"),
]


@pytest.mark.parametrize("text, message", HOSTILE, ids=[m.split(": ")[0] + str(i) for i, (_, m) in enumerate(HOSTILE)])
def test_hostile_values_are_one_line_naming_file_and_key(tmp_path, text, message):
    test_each_defect_is_one_line_naming_file_and_key(tmp_path, text, message)


@pytest.mark.parametrize("value, target", [
    ("pi5", (None, "pi5", None)),
    ("deploy@203.0.113.7:2222", ("deploy", "203.0.113.7", 2222)),
    ("_svc.x-1@host.example.com", ("_svc.x-1", "host.example.com", None)),
    ("h1:22", (None, "h1", 22)),
    ("[::1]:22", (None, "::1", 22)),
    ("deploy@[2001:db8::7]", ("deploy", "2001:db8::7", None)),
    ("[fe80::1%eth0]:2222", (None, "fe80::1%eth0", 2222)),
])
def test_ssh_forms_that_load_and_how_they_split(tmp_path, value, target):
    s = loader.load(write(tmp_path, host(ssh=value))).hosts["a"]
    assert s.ssh == value and s.target == target


@pytest.mark.parametrize("value", ["pi5", "deploy@203.0.113.7:2222", "_svc.x-1@host.example.com", "h1:22"])
def test_ssh_splits_as_fabric_does_outside_ipv6(value):
    from fabric.connection import derive_shorthand
    assert tuple(derive_shorthand(value).values()) == schema.parse_ssh(value)


def test_shell_text_keeps_its_freedom(tmp_path):
    s = loader.load(write(tmp_path, host('prepare = ["git pull --ff-only && docker compose build\\t-q | tee b.log"]\n'
                                           'dir = "~/my app"\ncompose_file = "deploy/compose prod.yml"\n'
                                           'compose = "\\"/opt/my docker/docker\\" compose"\n'
                                           'switch = { reload = "sudo systemctl reload nginx; true", '
                                           'command = "my-switch {color} {port} > /dev/null 2>&1" }\n'
                                           'health = { path = "/health/?full=1&x=%20" }'))).hosts["a"]
    assert s.prepare == ("git pull --ff-only && docker compose build\t-q | tee b.log",)
    assert (s.dir, s.compose_file) == ("~/my app", "deploy/compose prod.yml")
    assert s.switch.reload == "sudo systemctl reload nginx; true" and s.health.path == "/health/?full=1&x=%20"


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a directory, not a hosts file"),
    (lambda p: p.write_bytes(b'[hosts.a]\nssh = "\xff"\n'), "not UTF-8 text (byte 0xff at offset 17)"),
])
def test_a_hosts_file_that_cannot_be_read_is_one_line(tmp_path, make, message):
    path = tmp_path / "hosts.toml"
    make(path)
    with pytest.raises(ConfigError) as e:
        loader.load(path)
    assert str(e.value).startswith(f"{path}: {message}")
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_an_unreadable_hosts_file_is_one_line(tmp_path, monkeypatch):
    path = write(tmp_path, host())

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(loader, "read_regular", denied)
    with pytest.raises(ConfigError) as e:
        loader.load(path)
    assert str(e.value) == f"{path}: cannot be read: Permission denied" and e.value.exit_code == 2


@pytest.mark.parametrize("extra, message", [
    ('dir = "app\\u2028x"', "hosts.a.dir: 'app\\u2028x': must be one line"),
    ('"k\\u2029" = 1', "hosts.a.k\\u2029: unknown key"),
])
def test_a_unicode_line_separator_is_no_way_around_one_line(tmp_path, extra, message):
    with pytest.raises(ConfigError) as e:
        loader.load(write(tmp_path, host(extra)))
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1


# --- odd files in place of a hosts or secrets file: exit 2 in one line, never a hang (issue 19, item 8) --

def odd_files(tmp_path) -> dict[str, tuple[Path, str]]:
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block for ever
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * 200_000)  # 2 MB of valid TOML
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 500 + "]" * 500 + "\n")
    return {"zero": (Path("/dev/zero"), "is a device, not a regular file"),
            "fifo": (fifo, "is a FIFO, not a regular file"),
            "big": (big, "is over 1 MB: not a file of settings"),
            "deep": (deep, "not valid TOML: nested too deeply")}


@pytest.mark.parametrize("which", ["zero", "fifo", "big", "deep"])
def test_an_odd_hosts_file_is_one_line_and_exit_2(tmp_path, which):
    import time

    path, message = odd_files(tmp_path)[which]
    started = time.monotonic()
    with pytest.raises(ConfigError) as e:
        loader.load(path)
    assert time.monotonic() - started < 5
    assert str(e.value).startswith(f"{path}: {message}") and "\n" not in str(e.value)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("which", ["zero", "fifo", "big"])
def test_an_odd_secrets_env_file_is_one_line_naming_the_key(tmp_path, which):
    from tasks.config import secrets

    path, message = odd_files(tmp_path)[which]
    (tmp_path / "hosts.toml").write_text(f'[defaults.secrets]\nenv_file = "{path}"\n[hosts.h1]\nssh = "h1"\n')
    hosts = list(loader.load(tmp_path / "hosts.toml").hosts.values())
    with pytest.raises(ConfigError) as e:
        secrets.for_hosts(hosts)
    assert str(e.value) == f"{tmp_path / 'hosts.toml'}: defaults.secrets.env_file: {path}: {message}"


def test_fab_with_dev_zero_or_a_fifo_as_hosts_file_exits_2_at_once(tmp_path):
    from .test_cli import assert_usage_error, fab

    for which in ("zero", "fifo"):
        folder = tmp_path / which
        folder.mkdir()
        path, message = odd_files(folder)[which]
        r = fab(tmp_path, "status", "--hosts-file", str(path))
        assert_usage_error(r, f"error: {path}: {message}")


# --- names may not end in a newline (issue 19, item 5) --------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ('[hosts.a]\nssh = "a"\nfront = ["web\\n"]\n', "hosts.a.front"),
    ('[hosts.a]\nssh = "a"\nbackground = ["worker\\n"]\n', "hosts.a.background"),
    ('[hosts.a]\nssh = "a"\nshared = ["db\\n"]\n', "hosts.a.shared"),
    ('[hosts.a]\nssh = "a"\nbroker = { queues = ["celery\\n"] }\n', "hosts.a.broker.queues"),
    ('[hosts.a]\nssh = "a"\nbuild = { services = ["web\\n"] }\n', "hosts.a.build.services"),
    ('[hosts."x\\n"]\nssh = "a"\n', "hosts.x\\n"),
    ('[hosts.a]\nssh = "a"\n[groups]\n"g\\n" = ["a"]\n', "groups.g\\n"),
    ('[hosts.a]\nssh = "a"\napp = "app\\n"\n', "hosts.a.app"),
    ('[hosts.a]\nssh = "a\\n"\n', "hosts.a.ssh"),
    ('[hosts.a]\nssh = "a"\nswitch = { upstream_file = "/etc/nginx/x.conf\\n" }\n', "hosts.a.switch.upstream_file"),
    ('[hosts.a]\nssh = "a"\nhealth = { path = "/health/\\n" }\n', "hosts.a.health.path"),
])
def test_a_name_or_value_ending_in_a_newline_is_refused_naming_the_key(tmp_path, text, key):
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        loader.load(path)
    assert str(e.value).startswith(f"{path}: {key}: ") and "\n" not in str(e.value), str(e.value)


def test_a_secrets_name_ending_in_a_newline_is_refused():
    from tasks.config import secrets

    assert not secrets.NAME.match("A\n") and not schema.NAME.match("web\n") and schema.NAME.match("web")
