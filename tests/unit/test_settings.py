"""hosts.toml parsing: defaults, overrides, and one clear error per defect (no SSH)."""

from pathlib import Path

import pytest

from tasks import settings
from tasks.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


def test_the_documented_example_loads():
    inv = settings.load(ROOT / "hosts.toml")
    assert list(inv.hosts) == ["h1", "h2", "h3"]
    h3 = inv.hosts["h3"]
    assert h3.health.retries == 20 and h3.health.path == "/health/"  # one key overridden, others kept
    assert h3.ssh_config == str(ROOT / ".bed" / "ssh_config")
    assert inv.groups == {"demo": ("h1", "h2")}


def test_only_ssh_is_required_and_defaults_match_the_contract(tmp_path):
    s = settings.load(write(tmp_path, '[hosts.pi5]\nssh = "pi5"\n')).hosts["pi5"]
    assert (s.app, s.dir, s.compose_file, s.compose) == ("app", "~/app", "compose.yml", "docker compose")
    assert s.front == ("web", "redis") and s.background == ("worker", "beat") and s.web == "web"
    assert (s.stop_timeout, s.settle, s.prepare) == (30, 5, ())
    assert (s.port("blue"), s.port("green")) == (18001, 18002)
    assert s.health == settings.Health("/health/", 10, 1.0, 2.0, 0.0)
    assert s.switch.mode == "nginx" and s.switch.upstream_name == "app_backend"
    assert s.switch.reload == "sudo nginx -s reload" and s.connect_timeout == 10


def test_host_table_overrides_defaults_key_by_key(tmp_path):
    inv = settings.load(write(tmp_path, """
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
        settings.load(path)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_missing_file_says_how_to_name_another(tmp_path):
    with pytest.raises(ConfigError, match="no such file.*--hosts-file"):
        settings.load(tmp_path / "nope.toml")


def test_selection_unions_hosts_and_groups_in_order(tmp_path):
    inv = settings.load(write(tmp_path, """
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
    inv = settings.load(write(tmp_path, '[hosts.a]\nssh = "a"\n[hosts.b]\nssh = "b"\n'))
    with pytest.raises(UsageError) as e:
        inv.select(hosts, groups, False)
    assert message in str(e.value) and e.value.exit_code == 2


def test_broker_defaults_follow_front_and_shared(tmp_path):
    inv = settings.load(write(tmp_path, """
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
    assert settings.HostSettings(name="x", ssh="x", background=("worker", "celery-beat", "flower")).drain_workers == \
        ("worker", "flower")
