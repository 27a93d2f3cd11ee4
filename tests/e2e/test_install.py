"""The tool as a newcomer installs it: a wheel of this checkout, `pip install`ed (not editable) into a
fresh venv, used from an app repo outside this checkout that has its own Celery `tasks.py` and no
fabfile. Needs no bed host: every command here either contacts no host or fails before it could.
The dependencies come from the package index (pip's cache is fine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ["pyproject.toml", "README.md", "LICENSE", "tasks"]  # what the wheel is made of
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

CELERY_TASKS = '''"""The app's own Celery tasks, under the name Celery users give them."""
try:
    from celery import shared_task
except ImportError:  # not in the deploy tool's venv: the tool must never import this module
    raise SystemExit("the app's own tasks.py was imported")
'''
HOSTS = '''[defaults]
app = "myapp"
dir = "~/myapp"
front = ["web"]
ssh_config = "deploy/ssh_config"     # relative: to this file's folder, wherever fab-bluegreen runs
connect_timeout = 1

[hosts.pi5]
ssh = "deploy@127.0.0.1:1"           # nothing listens there: a host that is never reached here
'''
FABFILE = '''"""The app's own fabfile: its own task, and the tool's as bg.*"""
from invoke import Collection, task

import fab_bluegreen


@task
def backup(c):
    """Back up the database (the app's own task)."""
    print("backup ran")


ns = Collection(backup)
ns.add_collection(fab_bluegreen.ns, "bg")
'''


def test_installed_from_a_wheel_into_a_fresh_venv_it_works_from_an_app_repo(tmp_path):
    """One test, so that the wheel and the venv are made once (pytest-xdist would make them per worker)."""
    venv = install(tmp_path / "install")
    check_nothing_named_tasks(venv, app(tmp_path / "app1"))
    check_list_help_versions_and_usage_errors(venv, app(tmp_path / "app2"))
    check_a_subfolder_reads_the_repos_hosts_toml(venv, app(tmp_path / "app3"))
    check_a_users_fabfile_with_the_tasks_as_bg(venv, app(tmp_path / "app4"))


def install(tmp: Path) -> Path:
    """A fresh venv (no system site-packages) with the wheel of this checkout installed, not editable."""
    source = tmp / "source"  # built from a copy: the build leaves nothing in the checkout
    source.mkdir(parents=True)
    for name in BUILD:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "wheels", source, timeout=300)
    wheel, = (tmp / "wheels").glob("fab_bluegreen-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)  # --system-site-packages is off by default
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",  # this pip, into it
        "--disable-pip-version-check", wheel, timeout=300)
    return venv


def app(folder: Path) -> Path:
    """The user's app repo: compose file, hosts.toml, a Celery tasks.py, a subfolder; no fabfile."""
    (folder / "myapp" / "settings").mkdir(parents=True)
    (folder / "compose.yml").write_text("services:\n  web:\n    image: myapp:latest\n")
    (folder / "hosts.toml").write_text(HOSTS)
    (folder / "tasks.py").write_text(CELERY_TASKS)
    return folder


def run(*argv, cwd=None, timeout=60, check=True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**env, "COLUMNS": "400"})
    if check:
        assert r.returncode == 0, (argv, r.returncode, r.stdout, r.stderr)
    return r


def usage_error(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr


def check_nothing_named_tasks(venv, app):
    python = venv / "bin" / "python"
    where = json.loads(run(python, "-c", "import fab_bluegreen, json, sysconfig; print(json.dumps("
                           "[fab_bluegreen.__file__, sysconfig.get_paths()['purelib']]))", cwd=app).stdout)
    site = Path(where[1])
    assert Path(where[0]) == site / "fab_bluegreen" / "__init__.py"  # the installed copy, not this checkout
    assert not (site / "tasks").exists() and not (site / "tasks.py").exists()
    top_level = [p.read_text().split() for p in site.glob("fab_bluegreen-*.dist-info/top_level.txt")]
    assert top_level == [["fab_bluegreen"]]
    assert not list(site.glob("__editable__*"))  # a real install, not a link to this checkout
    assert (site / "fab_bluegreen" / "program.py").is_file()


def check_list_help_versions_and_usage_errors(venv, app):
    fbg = venv / "bin" / "fab-bluegreen"
    listed = run(fbg, "-l", cwd=app)
    assert not listed.stderr and {"deploy", "promote", "rollback", "cleanup", "drain", "check", "status",
                                  "history", "logs", "unlock"} <= {line.split()[0] for line in listed.stdout.splitlines()
                                                                   if line.startswith("  ")}
    helped = run(fbg, "--help", "deploy", cwd=app).stdout
    assert helped.startswith("Usage: fab-bluegreen [--core-opts] deploy") and "--max-fail=INT" in helped
    lines = run(fbg, "--version", cwd=app).stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["fab-bluegreen", "Fabric", "Invoke", "Paramiko"]
    assert lines[0] == f"fab-bluegreen {VERSION}"  # from the installed package's metadata
    usage_error(run(fbg, "-t", "abc", "status", cwd=app, check=False),
                "error: -t/--connect-timeout expects a whole number, got 'abc'")
    usage_error(run(fbg, "deploy", "--host", "pi5", "--bogus", cwd=app, check=False),
                "error: deploy has no option --bogus (fab-bluegreen --help deploy lists its options)")


def check_a_subfolder_reads_the_repos_hosts_toml(venv, app):
    fbg = venv / "bin" / "fab-bluegreen"
    here = app / "myapp" / "settings"
    usage_error(run(fbg, "status", "--host", "nope", cwd=here, check=False),
                f"error: {app / 'hosts.toml'}: unknown host 'nope' (known hosts: pi5)")
    r = run(fbg, "status", "--host", "pi5", "--json", cwd=here, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)  # ssh_config resolved against the file, not the cwd:
    assert json.loads(r.stdout)["hosts"][0]["error"] == f"ssh_config {app / 'deploy' / 'ssh_config'} does not exist"
    outside = app.parent / (app.name + "-elsewhere")
    outside.mkdir()
    usage_error(run(fbg, "status", cwd=outside, check=False), f"error: no hosts.toml in {outside} or any folder")


def check_a_users_fabfile_with_the_tasks_as_bg(venv, app):
    fab = venv / "bin" / "fab"
    (app / "fabfile.py").write_text(FABFILE)
    listed = run(fab, "-l", cwd=app).stdout
    assert "  backup " in listed and "  bg.deploy " in listed and "  bg.status " in listed, listed
    assert run(fab, "backup", cwd=app).stdout == "backup ran\n"
    usage_error(run(fab, "bg.deploy", "--bogus", cwd=app, check=False),
                "error: bg.deploy has no option --bogus (fab --help bg.deploy lists its options)")
    usage_error(run(fab, "bg.deploy", "--host", "pi5", "--batch", "x", cwd=app, check=False),
                "error: --batch expects a whole number, got 'x'")
    assert "Usage: fab [--core-opts] bg.deploy" in run(fab, "--help", "bg.deploy", cwd=app).stdout
