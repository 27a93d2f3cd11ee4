"""Host-key refusals that help (issue 19, item 12): the offered and known keys as OpenSSH shows
them (SHA256 fingerprints, checked against ssh-keygen -l), and hints that name a non-default
port as known_hosts does (`[host]:port`)."""

from __future__ import annotations

import base64
import subprocess

import paramiko
import pytest

from tasks.config.schema import HostSettings
from tasks.errors import Unreachable
from tasks.host import remote

S = HostSettings(name="pi5", ssh="deployer@127.0.0.1:2222")


def new_key(tmp_path, name: str) -> tuple[paramiko.PKey, str]:
    """A fresh ed25519 key, and its fingerprint as `ssh-keygen -l` prints it."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    blob = (tmp_path / f"{name}.pub").read_text().split()[1]
    said = subprocess.run(["ssh-keygen", "-l", "-f", str(path) + ".pub"], capture_output=True, text=True,
                          check=True).stdout.split()[1]
    return paramiko.Ed25519Key(data=base64.b64decode(blob)), said


class Conn:
    """What _open() uses of a Fabric Connection, failing to open as told."""

    def __init__(self, error: Exception, port: int = 2222):
        self.user, self.host, self.port, self.ssh_config, self.error = "deployer", "127.0.0.1", port, {}, error

    def open(self):
        raise self.error


def refusal(conn: Conn) -> str:
    with pytest.raises(Unreachable) as e:
        remote._open(conn, S, conn.host)
    return str(e.value)


def test_a_changed_host_key_shows_both_fingerprints_as_openssh_does(tmp_path):
    offered, offered_said = new_key(tmp_path, "offered")
    known, known_said = new_key(tmp_path, "known")
    assert remote.fingerprint(offered) == offered_said and offered_said != known_said
    said = refusal(Conn(paramiko.BadHostKeyException("127.0.0.1", offered, known)))
    assert f"(offered {offered_said}, known {known_said})" in said
    assert "AAAAC3NzaC1lZDI1NTE5" not in said  # the same for every ed25519 key: it tells nothing
    assert "`ssh-keygen -R '[127.0.0.1]:2222'`" in said and "`ssh -p 2222 127.0.0.1`" in said


@pytest.mark.parametrize("port, entry, ssh", [(2222, "'[127.0.0.1]:2222'", "ssh -p 2222 127.0.0.1"),
                                              (22, "127.0.0.1", "ssh 127.0.0.1")])
def test_the_hints_name_a_non_default_port_as_known_hosts_does(tmp_path, port, entry, ssh):
    offered, _ = new_key(tmp_path, "offered")
    changed = refusal(Conn(paramiko.BadHostKeyException("127.0.0.1", offered, offered), port))
    assert f"`ssh-keygen -R {entry}`" in changed
    unknown = refusal(Conn(paramiko.SSHException("Server '[127.0.0.1]:2222' not found in known_hosts"), port))
    assert f"trust it with `{ssh}` once (or ssh-keyscan -p {port} 127.0.0.1 >> ~/.ssh/known_hosts)" in unknown
    assert remote.known_hosts_name("127.0.0.1", port) == entry.strip("'")
