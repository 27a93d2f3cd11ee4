"""The installed command and what a newcomer hits first: `fab-bluegreen` (tasks/program.py) finds
hosts.toml as fab finds a fabfile, prints four versions, takes Fabric's own options strictly, and ends
quietly when its reader goes away; a user's fabfile that adds the tasks as `bg` names them `bg.deploy`
in its hints. No test bed: the editable install's `fab-bluegreen` and `fab` in subprocesses, the
discovery in-process. tests/e2e/test_install.py does it all again from a wheel in a fresh venv."""

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from invoke import Collection, task

from tasks import edge
from tasks.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAB_BLUEGREEN = BIN / "fab-bluegreen"
FAB = BIN / "fab"
HOSTS = '[defaults]\nconnect_timeout = 1\nssh_config = "ssh/config"\n[hosts.h1]\nssh = "deploy@127.0.0.1:{port}"\n'


def run(cwd, *argv, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "400"})


def one_line_usage_error(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr


@pytest.fixture
def app(tmp_path):
    """An app repo outside this checkout: hosts.toml (a host nothing listens for), a subfolder, and the
    usual Celery module tasks.py, which must never be imported."""
    (tmp_path / "hosts.toml").write_text(HOSTS.format(port=1))
    (tmp_path / "tasks.py").write_text('raise SystemExit("the app\'s own tasks.py was imported")\n')
    (tmp_path / "src" / "deep").mkdir(parents=True)
    return tmp_path


# --- finding hosts.toml -----------------------------------------------------------------------------

def test_hosts_toml_is_found_here_then_in_the_nearest_folder_above(app, monkeypatch):
    monkeypatch.chdir(app)
    assert edge.find_hosts_file() == Path("hosts.toml")
    monkeypatch.chdir(app / "src" / "deep")
    assert edge.find_hosts_file() == app / "hosts.toml"
    (app / "src" / "hosts.toml").write_text(HOSTS.format(port=2))
    assert edge.find_hosts_file() == app / "src" / "hosts.toml"  # the nearest wins


def test_relative_paths_in_a_hosts_file_found_above_stay_relative_to_that_file(app, monkeypatch):
    monkeypatch.chdir(app / "src" / "deep")
    inventory, hosts = edge._load("", ["h1"], [], False)
    assert inventory.path == app / "hosts.toml"
    assert Path(hosts[0].ssh_config) == app / "ssh" / "config"


def test_hosts_file_given_is_read_as_given_and_not_searched(app, monkeypatch):
    other = app / "src" / "other.toml"
    other.write_text(HOSTS.format(port=3).replace("h1", "h3"))
    monkeypatch.chdir(app / "src" / "deep")
    inventory, hosts = edge._load(str(other), ["h3"], [], False)
    assert inventory.path == other and hosts[0].name == "h3"


def test_no_hosts_toml_anywhere_says_where_it_looked_and_that_init_writes_one(tmp_path, monkeypatch):
    assert not any((p / "hosts.toml").exists() for p in tmp_path.parents)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as e:
        edge.find_hosts_file()
    assert str(e.value) == (f"no hosts.toml in {tmp_path} or any folder above it: `fab-bluegreen init` writes one "
                            "here, or name one with --hosts-file PATH")
    one_line_usage_error(run(tmp_path, FAB_BLUEGREEN, "status"), f"error: no hosts.toml in {tmp_path} or any")


def test_the_installed_command_reads_the_parents_hosts_toml_and_never_the_apps_tasks_py(app):
    r = run(app / "src" / "deep", FAB_BLUEGREEN, "status", "--host", "nope")
    one_line_usage_error(r, f"error: {app / 'hosts.toml'}: unknown host 'nope' (known hosts: h1)")
    r = run(app / "src", FAB_BLUEGREEN, "status", "--host", "h1", "--json")  # ssh_config, relative to the file
    assert r.returncode == 1 and json.loads(r.stdout)["hosts"][0]["error"] == \
        f"ssh_config {app / 'ssh' / 'config'} does not exist", (r.stdout, r.stderr)
    (app / "ssh").mkdir()
    (app / "ssh" / "config").write_text("")
    r = run(app / "src", FAB_BLUEGREEN, "status", "--host", "h1")  # a real attempt, refused at port 1
    assert r.returncode == 1 and "cannot connect to deploy@127.0.0.1:1" in r.stdout, (r.stdout, r.stderr)
    assert "tasks.py was imported" not in r.stderr


def test_the_cleanup_hint_names_the_hosts_file_only_when_one_was_given():
    assert edge._fab("cleanup", [], "") == "fab cleanup"
    assert edge._fab("cleanup", [], "a b.toml") == "fab cleanup --hosts-file 'a b.toml'"


def test_a_hint_names_the_task_as_the_user_types_it(monkeypatch):
    import tasks
    from tasks import cmdline

    @task
    def cleanup(c):
        """A user's own task of the same name, beside the tool's."""

    users = Collection(cleanup)
    users.add_collection(tasks.ns, "bg")
    monkeypatch.setattr(cmdline, "_program", SimpleNamespace(binary="fab", collection=users))
    assert edge._fab("cleanup", [], "") == "fab bg.cleanup"
    monkeypatch.setattr(cmdline, "_program", SimpleNamespace(binary="fab-bluegreen", collection=tasks.ns))
    assert edge._fab("cleanup", [], "") == "fab-bluegreen cleanup"


# --- the installed command: its tasks, its version, its own options ---------------------------------

def test_the_installed_command_lists_the_tasks_and_shows_a_tasks_help(app):
    listed = run(app, FAB_BLUEGREEN, "-l")
    assert listed.returncode == 0 and not listed.stderr, listed
    assert {"deploy", "promote", "rollback", "cleanup", "drain", "check", "status", "history", "logs",
            "unlock"} <= {line.split()[0] for line in listed.stdout.splitlines()[1:] if line.startswith("  ")}
    helped = run(app, FAB_BLUEGREEN, "--help", "deploy")
    assert helped.returncode == 0 and "--max-fail=INT" in helped.stdout, helped
    assert helped.stdout.startswith("Usage: fab-bluegreen [--core-opts] deploy")


def test_version_names_this_tool_fabric_invoke_and_paramiko(app):
    import fabric
    import invoke
    import paramiko

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    r = run(app, FAB_BLUEGREEN, "--version")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.splitlines() == [f"fab-bluegreen {version}", f"Fabric {fabric.__version__}",
                                     f"Invoke {invoke.__version__}", f"Paramiko {paramiko.__version__}"]


@pytest.mark.parametrize("argv, message", [
    (["-t", "abc", "-l"], "error: -t/--connect-timeout expects a whole number, got 'abc'"),
    (["--connect-timeout=1.5", "status"], "error: -t/--connect-timeout expects a whole number, got '1.5'"),
    (["-T", "abc", "status"], "error: -T/--command-timeout expects a whole number, got 'abc'"),
    (["-D", "x", "-l"], "error: -D/--list-depth expects a whole number, got 'x'"),
    (["deploy", "--host", "h1", "--bogus"],
     "error: deploy has no option --bogus (fab-bluegreen --help deploy lists its options)"),
    (["nosuchtask"], "error: unknown task 'nosuchtask' (the tasks: "),
])
def test_the_installed_commands_own_options_and_the_tasks_are_strict(app, argv, message):
    one_line_usage_error(run(app, FAB_BLUEGREEN, *argv), message)


# --- a user's fabfile: the tasks beside the user's own, as bg.* -------------------------------------

FABFILE = '''from invoke import Collection, task
import fab_bluegreen

@task
def mine(c):
    """The user's own task."""
    print("mine ran")

ns = Collection(mine)
ns.add_collection(fab_bluegreen.ns, "bg")
'''


def test_a_users_fabfile_lists_its_own_tasks_and_bg_and_its_hints_say_bg(app):
    (app / "fabfile.py").write_text(FABFILE)
    listed = run(app, FAB, "-l")
    assert listed.returncode == 0 and "  mine " in listed.stdout and "  bg.deploy " in listed.stdout, listed
    assert run(app, FAB, "mine").stdout == "mine ran\n"
    one_line_usage_error(run(app, FAB, "bg.deploy", "--host", "h1", "--bogus"),
                         "error: bg.deploy has no option --bogus (fab --help bg.deploy lists its options)")
    one_line_usage_error(run(app, FAB, "bg.history", "--host", "h1", "--lines", "x"),
                         "error: --lines expects a whole number, got 'x'")


# --- a reader that goes away -----------------------------------------------------------------------

CLOSED = [([FAB, "-l"], 141), ([FAB_BLUEGREEN, "-l"], 141), ([FAB_BLUEGREEN, "--version"], 141),
          ([FAB_BLUEGREEN, "status", "--host", "h1"], 1), ([FAB_BLUEGREEN, "status", "--host", "h1", "--json"], 1)]


@pytest.mark.parametrize("argv, code", CLOSED, ids=["fab -l", "fab-bluegreen -l", "fab-bluegreen --version",
                                                    "a status table", "a status --json"])
def test_output_into_a_closed_pipe_ends_quietly(app, argv, code):
    """A listing, the help or the version cut: 141, as a program ended by SIGPIPE. A task's table or
    document cut: the task carries on and exits with its own code (1 here: the host is unreachable)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails (EPIPE)
    try:
        r = run(ROOT if argv[0] == FAB else app, *argv, stdout=write)
    finally:
        os.close(write)
    assert (r.returncode, r.stderr) == (code, ""), r.stderr


def test_a_deploy_whose_table_or_progress_is_cut_still_notifies_and_keeps_its_exit_code(app):
    with (app / "hosts.toml").open("a") as f:
        f.write('[defaults.notify]\ncommand = "cat > notified.json"\n')  # run in the hosts file's folder
    (app / "ssh").mkdir()
    (app / "ssh" / "config").write_text("")
    read, write = os.pipe()
    os.close(read)
    try:
        r = run(app / "src", FAB_BLUEGREEN, "deploy", "--host", "h1", stdout=write)
        assert (r.returncode, "Traceback" in r.stderr) == (1, False), r.stderr  # 1: h1 could not be reached
        assert json.loads((app / "notified.json").read_text())["hosts"][0]["result"] == "unreachable"
        (app / "notified.json").unlink()
        r = subprocess.run([FAB_BLUEGREEN, "deploy", "--host", "h1"], cwd=app, stdout=write, stderr=write,
                           timeout=60)  # `2>&1 | head`: the progress lines too
        assert r.returncode == 1
        assert json.loads((app / "notified.json").read_text())["hosts"][0]["result"] == "unreachable"
    finally:
        os.close(write)


def test_fab_l_into_head_ends_quietly():
    r = subprocess.run(f"{FAB} -l | head -1; echo rc=${{PIPESTATUS[0]}}", shell=True, executable="/bin/bash",
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stderr == "" and r.stdout.splitlines()[0] == "Available tasks:", r
    assert r.stdout.splitlines()[1] in ("rc=0", "rc=141")  # 0 when all was written before head left


# --- the package: relative imports only ------------------------------------------------------------

def test_no_module_imports_the_package_by_the_folders_name():
    """Installed, tasks/ is fab_bluegreen: an absolute `tasks` import would load a user's tasks.py."""
    absolute = []
    for path in (ROOT / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            absolute += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("tasks", "fab_bluegreen")]
    assert absolute == []
