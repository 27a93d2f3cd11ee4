"""What the masking of secrets touches (tasks/mask.py, tasks/document.py): free text only, never a
document's keys or fixed words; a value as a whole token; its usual derived forms; the raw text before
control characters are stripped; and a warning for values too short to mask (issue 19, items 3 and 4)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from tasks import document, mask
from tasks.config import secrets
from tasks.config.schema import Color, HostSettings, Secrets
from tasks.edge import Output
from tasks.config.schema import Notify
from tasks.result import DEPLOYED, DeployResult


@pytest.fixture(autouse=True)
def forget_hidden(monkeypatch):
    monkeypatch.setattr(mask, "_hidden", ())  # what a test hides stays in that test
    monkeypatch.setattr(mask, "_pattern", None, raising=False)


# --- item 3: keys and fixed words stay, free text is masked, whole tokens only --------------------------

def test_a_secret_equal_to_a_key_or_a_fixed_word_leaves_the_document_alone_but_not_its_free_text(tmp_path):
    mask.hide(["host", "deploy", "deployed", "blue", "pi5-web"])  # A=host, DB_USER=deploy ...
    r = DeployResult("pi5-web", "deploy", DEPLOYED, Color.BLUE, Color.GREEN, "health check",
                     "deploy of host pi5-web: blue went away", left=["check blue"])
    doc = document.document("deploy", document.deploy_hosts([r]), 0, message="deploy to host")
    (host,) = doc["hosts"]
    assert list(doc) == ["format", "task", "ok", "exit_code", "dry_run", "message", "user", "time", "hosts"]
    assert doc["task"] == "deploy" and "host" in host and "hosts" in doc
    assert (host["host"], host["from"], host["to"], host["result"], host["step"]) == \
        ("pi5-web", "blue", "green", "deployed", "health check")
    assert host["reason"] == "*** of *** ***: *** went away" and host["left"] == ["check ***"]
    assert doc["message"] == "*** to ***"
    # the notification's body is the same document
    out = Output("deploy", notify=Notify(command="cat > body.json"), hosts_file=tmp_path / "hosts.toml")
    assert out.done(document.deploy_hosts([r]), 0) == 0
    body = json.loads((tmp_path / "body.json").read_text())
    assert body["task"] == "deploy" and body["hosts"][0]["host"] == "pi5-web" and body["hosts"][0]["result"] == "deployed"


def test_a_value_is_masked_as_a_whole_token_never_inside_another_word():
    mask.hide(["hunter2", "deploy", "p@ss!"])
    assert mask.shown("hunter2 xhunter2 hunter22 (hunter2). deployment redeploy deploy") == \
        "*** xhunter2 hunter22 (***). deployment redeploy ***"
    assert mask.shown("pw=p@ss!, p@ss!x") == "pw=***, ***x"  # the token ends where the value ends in a "!"


def write_env(tmp_path, text: str) -> HostSettings:
    (tmp_path / "prod.env").write_text(text)
    return HostSettings(name="pi5", ssh="pi5", secrets=Secrets(env_file="prod.env", base=str(tmp_path),
                                                               origin="hosts.toml: defaults.secrets.env_file"))


def test_a_value_too_short_to_mask_is_one_warning_naming_its_key_never_the_value(tmp_path):
    s = write_env(tmp_path, "A=Q9z\nLONG=long-enough\nEMPTY=\nB='x'\nA2=\"Q9z\"\n")
    warnings: list[str] = []
    secrets.for_hosts([s, HostSettings(name="vm1", ssh="vm1", secrets=s.secrets)], warn=warnings.append)
    assert [w.split(":")[1].strip() for w in warnings] == ["the value of A is shorter than 4 characters",
                                                           "the value of B is shorter than 4 characters",
                                                           "the value of A2 is shorter than 4 characters"]
    assert all(w.startswith("prod.env: ") and "Q9z" not in w and "'x'" not in w for w in warnings)
    assert all(w.endswith("(hosts.toml: defaults.secrets.env_file)") for w in warnings)
    assert mask.shown("Q9z long-enough") == "Q9z ***"


# --- item 4: what the masking missed --------------------------------------------------------------------

def test_each_line_of_a_multi_line_value_is_masked():
    mask.hide(["-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"])
    assert mask.shown("worker | MIIEvQIBADANBg\nworker | ok") == "worker | ***\nworker | ok"


@pytest.mark.parametrize("form", [quote("p@ss w/rd+1", safe=""), quote("p@ss w/rd+1"), "p%40ss+w%2Frd%2B1",
                                  base64.b64encode(b"p@ss w/rd+1").decode(),
                                  base64.b64encode(b"p@ss w/rd+1").decode().rstrip("=")])
def test_the_url_encoded_and_base64_forms_of_a_value_are_masked(form):
    mask.hide(["p@ss w/rd+1"])
    assert mask.shown(f"GET /login?pw={form} HTTP/1.1") == "GET /login?pw=*** HTTP/1.1"


@pytest.mark.parametrize("value", ["abcd\refgh", "abcd\u202eefgh", "abcd\x1b[2Jefgh"])
def test_a_value_holding_a_control_character_is_matched_on_the_raw_text(value):
    mask.hide([value])
    assert mask.shown(f"pw {value}") == "pw ***"
    assert mask.shown("pw abcdefgh") == "pw ***"  # and as it looks once stripped
