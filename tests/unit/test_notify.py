"""Notifications (tasks/notify.py): [defaults.notify] as the loader takes it, the webhook POST (a local
HTTP server), the local command (given the body on stdin), and how each failure becomes one warning."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tasks import notify
from tasks.config import loader
from tasks.config.schema import Notify
from tasks.errors import ConfigError

from .receiver import Receiver

BODY = json.dumps({"task": "deploy", "ok": True, "exit_code": 0, "hosts": []})


def load(tmp_path, text: str):
    path = tmp_path / "hosts.toml"
    path.write_text(text + '\n[hosts.h1]\nssh = "h1"\n')
    return loader.load(path)


# --- the hosts file ----------------------------------------------------------------------------

def test_the_loader_takes_defaults_notify(tmp_path):
    inv = load(tmp_path, '[defaults.notify]\nwebhook = "https://hooks.example.com/x?y=1"\ncommand = "cat > out"\n'
                         'timeout = 3')
    assert inv.notify == Notify("https://hooks.example.com/x?y=1", "cat > out", 3.0) and inv.notify.configured
    assert load(tmp_path, "").notify == Notify() and not Notify().configured
    assert not hasattr(inv.hosts["h1"], "notify")  # the run's, not a host's


@pytest.mark.parametrize("text, message", [
    ('[defaults.notify]\nwebhook = "ftp://x/T0KEN"', "defaults.notify.webhook: expected an http:// or https:// URL"),
    ('[defaults.notify]\nwebhook = "https://x/ T0KEN"', "defaults.notify.webhook: expected an http:// or https://"),
    ('[defaults.notify]\nwebhook = 5', "defaults.notify.webhook: expected an http:// or https:// URL"),
    ('[defaults.notify]\ncommand = ["logger"]', "defaults.notify.command: expected a string"),
    ('[defaults.notify]\ncommand = "a\\nb"', "defaults.notify.command: 'a\\nb': must be one line"),
    ('[defaults.notify]\ntimeout = 0', "defaults.notify.timeout: 0: expected seconds above 0"),
    ('[defaults.notify]\nwebhok = "https://x"', "defaults.notify.webhok: unknown key (allowed here: command, "
                                                "timeout, webhook)"),
    ('[defaults]\nnotify = "https://x"', "defaults.notify: expected a table"),
])
def test_a_bad_notify_setting_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert str(e.value).startswith(f"{tmp_path / 'hosts.toml'}: {message}") and "\n" not in str(e.value)
    assert "T0KEN" not in str(e.value)  # a webhook's URL is never repeated: it may hold a token


def test_a_hosts_own_notify_is_refused(tmp_path):
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.h1]\nssh = "h1"\nnotify = { command = "true" }\n')
    with pytest.raises(ConfigError, match=r"hosts\.h1\.notify: notify is sent once per run, from the workstation, "
                                          r"not per host: set it in \[defaults\.notify\]"):
        loader.load(path)


# --- the webhook -------------------------------------------------------------------------------

def test_the_webhook_gets_the_body_as_a_json_post():
    warnings = []
    with Receiver() as hook:
        notify.send(Notify(webhook=hook.url), BODY, warnings.append)
    assert warnings == []
    ((path, headers, body),) = hook.posts
    assert path == "/hooks/T0KEN-s3cret?key=abc" and body == BODY.encode()
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("status, said", [(500, "HTTP 500"), (404, "HTTP 404"),
                                          (302, "HTTP 302 Found (a redirect: write the URL it points to)")])
def test_a_webhook_that_does_not_answer_2xx_is_one_warning_naming_it_by_its_host_only(status, said):
    warnings = []
    with Receiver(status=status) as hook:
        notify.send(Notify(webhook=hook.url), BODY, warnings.append)
    (warning,) = warnings
    port = hook.server.server_address[1]
    assert warning.startswith(f"notify.webhook: the POST to http://127.0.0.1:{port} failed: {said}")
    assert "exit code is unchanged" in warning and "T0KEN" not in warning and "key=abc" not in warning
    assert len(hook.posts) == 1 and hook.gets == []  # a redirect is not followed (as a GET without the body)


def test_a_webhook_nobody_listens_at_or_that_is_slow_is_a_warning_within_the_timeout():
    warnings = []
    with Receiver() as hook:
        url = hook.url
    notify.send(Notify(webhook=url), BODY, warnings.append)  # closed again: nothing listens there
    assert len(warnings) == 1 and "Connection refused" in warnings[0]
    with Receiver(delay=3) as slow:
        started = time.monotonic()
        notify.send(Notify(webhook=slow.url, timeout=0.5), BODY, warnings.append)
        assert time.monotonic() - started < 2.5
    assert len(warnings) == 2 and "timed out" in warnings[1]


# --- the command -------------------------------------------------------------------------------

def test_the_command_gets_the_body_on_stdin_in_the_hosts_files_folder(tmp_path, capfd):
    warnings = []
    notify.send(Notify(command="cat > got.json; echo said on stdout; echo said on stderr >&2"), BODY,
                warnings.append, cwd=tmp_path)
    assert warnings == [] and (tmp_path / "got.json").read_text() == BODY
    out, err = capfd.readouterr()
    assert "said" not in out + err  # its output is kept from fab's stdout (the --json document)


def test_a_failing_command_is_one_warning_with_its_last_line_masked(tmp_path):
    warnings = []
    notify.send(Notify(command="echo first; echo 'no route API_TOKEN=hunter2' >&2; exit 3"), BODY, warnings.append,
                cwd=tmp_path)
    assert warnings == ["notify.command failed: exit 3: no route API_TOKEN=*** (the exit code is unchanged)"]


def test_a_command_that_hangs_is_killed_with_what_it_started(tmp_path):
    warnings = []
    started = time.monotonic()
    notify.send(Notify(command="sleep 30 & echo $! > child.pid; wait", timeout=0.5), BODY, warnings.append,
                cwd=tmp_path)
    assert time.monotonic() - started < 5
    assert warnings == ["notify.command failed: timed out after 0.5 s (notify.timeout) (the exit code is unchanged)"]
    child = (tmp_path / "child.pid").read_text().strip()
    time.sleep(0.2)
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # gone, or dead unreaped


def test_both_are_sent_and_each_failure_is_its_own_warning(tmp_path):
    warnings = []
    with Receiver(status=503) as hook:
        notify.send(Notify(webhook=hook.url, command="cat > got.json; exit 1"), BODY, warnings.append, cwd=tmp_path)
    assert hook.bodies == [BODY.encode()] and (tmp_path / "got.json").read_text() == BODY
    assert [w.split(" ")[0] for w in warnings] == ["notify.webhook:", "notify.command"]


def test_ctrl_c_during_a_notification_is_a_warning_too(monkeypatch, tmp_path):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(notify, "post", interrupted)
    warnings = []
    notify.send(Notify(webhook="https://hooks.example.com/T0KEN", command="cat > got.json"), BODY, warnings.append,
                cwd=tmp_path)
    assert warnings == ["notify.webhook: the POST to https://hooks.example.com failed: interrupted (Ctrl-C) "
                        "(the exit code is unchanged)"]
    assert (tmp_path / "got.json").read_text() == BODY  # the command is still told


# --- a hostile webhook (issue 19, items 1 and 2) --------------------------------------------------

class RawServer:
    """A TCP server on 127.0.0.1 that answers each connection with `reply`, `pace` seconds per byte
    (0: all at once), then closes it: not HTTP, or HTTP too slowly. Stops within a second of exit."""

    def __init__(self, reply: bytes, pace: float = 0.0):
        self.reply, self.pace = reply, pace
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/T0KEN"
        self.stop = threading.Event()

    def serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    for i in range(len(self.reply)) if self.pace else [None]:
                        if self.stop.is_set():
                            break
                        conn.sendall(self.reply[i:i + 1] if self.pace else self.reply)
                        self.stop.wait(self.pace)
                except OSError:
                    pass

    def __enter__(self):
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("url", ["http://hookuser:S3cretHookPw@127.0.0.1/hooks/T0KEN",
                                 "https://S3cretHookPw@hooks.example.com/T0KEN", "http://127.0.0.1:S3cretHookPw/x"])
def test_credentials_or_a_bad_port_in_the_webhook_are_refused_at_load_without_showing_them(tmp_path, url):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, f'[defaults.notify]\nwebhook = "{url}"')
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'hosts.toml'}: defaults.notify.webhook: ") and "\n" not in message
    assert "S3cretHookPw" not in message and "T0KEN" not in message
    assert ("path or query" in message) if "@" in url else ("port is not a number" in message)


def test_a_webhook_url_urllib_cannot_use_is_one_warning_not_a_traceback():
    warnings = []
    notify.send(Notify(webhook="http://hookuser:S3cretHookPw@127.0.0.1/hooks/T0KEN", timeout=2), BODY, warnings.append)
    (warning,) = warnings
    assert warning.startswith("notify.webhook: the POST to http://127.0.0.1 failed: ") and "\n" not in warning
    assert "S3cretHookPw" not in warning and "T0KEN" not in warning


def test_a_server_that_answers_ssh_is_one_warning_and_the_exit_code_stays(tmp_path):
    from tasks.edge import Output

    with RawServer(b"SSH-2.0-OpenSSH_9\r\n\r\n") as server:
        warnings = []
        notify.send(Notify(webhook=server.url, timeout=3), BODY, warnings.append)
        assert warnings == [f"notify.webhook: the POST to {notify.origin(server.url)} failed: its answer is not HTTP "
                            "(BadStatusLine) (the exit code is unchanged)"]
        out = Output("deploy", notify=Notify(webhook=server.url, timeout=3), hosts_file=tmp_path / "hosts.toml")
        assert out.done([], 0) == 0


def test_the_timeout_is_a_deadline_for_the_whole_exchange_even_one_byte_a_second():
    warnings = []
    with RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", pace=1.0) as server:
        started = time.monotonic()
        notify.send(Notify(webhook=server.url, timeout=1.5), BODY, warnings.append)
        took = time.monotonic() - started
    assert took < 3, took
    assert warnings == [f"notify.webhook: the POST to {notify.origin(server.url)} failed: timed out after 1.5 s "
                        "(notify.timeout) (the exit code is unchanged)"]


# --- the body leaves the workstation: no SSH target in it (issue 19, item 11) ----------------------

def test_the_body_of_a_run_that_could_not_connect_holds_no_ssh_target_while_stdout_does(tmp_path):
    from .test_cli import closed_port, fab

    port = closed_port()
    (tmp_path / "hosts.toml").write_text(
        f'[defaults]\nconnect_timeout = 1\n[defaults.notify]\ncommand = "cat > body.json"\n'
        f'[hosts.h1]\nssh = "deployer@127.0.0.1:{port}"\n')
    r = fab(tmp_path, "deploy", "--host", "h1", "--json")
    assert r.returncode == 1, (r.stdout, r.stderr)
    printed = json.loads(r.stdout)
    assert f"cannot connect to deployer@127.0.0.1:{port}" in printed["hosts"][0]["reason"]  # on stdout: as it was
    body = (tmp_path / "body.json").read_text()
    sent = json.loads(body)
    assert "127.0.0.1" not in body and "deployer" not in body, body
    assert sent["hosts"][0]["host"] == "h1" and sent["hosts"][0]["reason"].startswith("cannot connect to <ssh target>")


@pytest.mark.parametrize("reason", [
    "the host key of 10.0.0.5 has CHANGED (offered SHA256:a, known SHA256:b): if you know why, remove the old key "
    "with `ssh-keygen -R '[10.0.0.5]:2222'` and trust the new one with `ssh -p 2222 10.0.0.5`",
    "the host key of the jump host 10.0.0.5 (ProxyJump of pi5) is not in known_hosts: check it, then trust it with "
    "`ssh 10.0.0.5` once (or ssh-keyscan -p 22 10.0.0.5 >> ~/.ssh/known_hosts)",
    "authentication failed for deploy@10.0.0.5:22 (Authentication failed.): check the SSH key or agent",
])
def test_no_ssh_target_of_a_refusal_or_a_logs_command_leaves_the_workstation(reason):
    from tasks import document
    from tasks.config.schema import Color
    from tasks.result import ROLLED_BACK, DeployResult

    r = DeployResult("pi5", "deploy", ROLLED_BACK, Color.BLUE, Color.GREEN, "connect", reason,
                     logs_command="ssh deploy@10.0.0.5:2222 'docker compose -p app-green logs web'")
    doc = document.document("deploy", document.deploy_hosts([r]), 1)
    sent = json.dumps(document.off_workstation(doc))
    assert "10.0.0.5" not in sent and "deploy@" not in sent, sent
    assert json.loads(sent)["hosts"][0]["host"] == "pi5" and "10.0.0.5" in json.dumps(doc)


def test_a_version_that_looks_like_user_at_host_stays_in_the_body():
    from tasks import document

    doc = {"hosts": [{"host": "h1", "live_version": "web@eed0690ceecc", "reason": "image web@sha256:3f2a9c gone"}]}
    assert document.off_workstation(doc) == doc
