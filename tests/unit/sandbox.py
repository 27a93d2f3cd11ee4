"""A host in a temporary folder for command lines run by a real `sh`: HOME, and fake `docker`,
`nginx`, `curl`, `sudo`, `git`, `ss`, `systemd-run` and `pwned` first on PATH. Each fake records
its argv (and the folder it ran in); `sudo -n X` runs X; nginx's `-s reload` signals a fake nginx
master, whose worker (a `sleep` named "nginx: worker process") it replaces, as nginx does.

With fail=True every fake fails (curl answers 000): the commands take their error branches."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.signals import defaults_in_child

FAKES = ("docker", "nginx", "curl", "sudo", "git", "ss", "systemd-run", "pwned")

FAKE = r"""#!/bin/sh
{ printf '%s\037%s' "$PWD" "${0##*/}"; for a in "$@"; do printf '\037%s' "$a"; done; printf '\036'; } >> "$FAKE_LOG"
name=${0##*/}
if [ "$FAKE_FAIL" = 1 ] && [ "$name" != pwned ]; then
  case $name in curl) printf 000; exit 7;; esac
  echo "$name: simulated failure" >&2; exit 1
fi
case $name in
  pwned) : > "$FAKE_ROOT/PWNED-by-pwned";;
  sudo) [ "$1" = -n ] && shift; exec "$@";;
  curl) printf 200;;
  nginx) case "$1" in -s) kill -HUP "$(cat "$FAKE_NGINX_PID")";; esac;;
  git) echo abc123def456;;
  systemd-run) exit 1;;
  docker) case "$1" in
      version) echo 24.0.7;;
      compose) case " $* " in *" version "*) echo v2.20.0;; esac;;
      ps) case "$*" in *"{{.ID}} {{.State}}"*) echo "c1 running";; *-aq*) echo cid1;; esac;;
      inspect) case "$*" in *NanoCpus*) for svc in worker beat; do echo "$svc id-$svc 0 0 0"; done;; esac;;
      exec) while read -r verb key; do echo 0; done;;
    esac;;
esac
exit 0
"""

MASTER = ('echo $$ > "$1"; w() { (exec -a "nginx: worker process" sleep 600) & pid=$!; }; w; '
          'trap \'kill $pid; w\' HUP; while :; do sleep 0.05; done')


class Sandbox:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.log = root / "argv.log"
        self.home.mkdir()
        self.bin.mkdir()
        for name in FAKES:
            (self.bin / name).write_text(FAKE)
            (self.bin / name).chmod(0o755)
        self.master: subprocess.Popen | None = None
        self.nginx_pid_file = root / "nginx-master.pid"

    def start_nginx(self, pid_file: Path) -> None:
        """A fake nginx master writing its PID to pid_file, with one worker."""
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.nginx_pid_file = pid_file
        self.master = subprocess.Popen(["bash", "-c", MASTER, "master", str(pid_file)], start_new_session=True,
                                       preexec_fn=defaults_in_child)  # a shell traps HUP only if not ignored
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            subprocess.run(["sleep", "0.02"])

    def stop(self) -> None:
        if self.master is not None:
            try:
                os.killpg(self.master.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.master.wait()

    def sh(self, line: str, fail: bool = False, timeout: float = 60, shell: str = "sh",
           umask: int | None = None) -> subprocess.CompletedProcess:
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.home), "FAKE_LOG": str(self.log),
               "FAKE_FAIL": "1" if fail else "0", "FAKE_ROOT": str(self.root),
               "FAKE_NGINX_PID": str(self.nginx_pid_file), "LC_ALL": "C"}
        if umask is not None:
            line = f"umask {umask:03o}; {line}"
        return subprocess.run([shell, "-c", line], cwd=self.home, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def calls(self, name: str | None = None) -> list[tuple[str, list[str]]]:
        """(folder, argv) of each fake run so far, argv[0] its name; only `name`'s if given."""
        if not self.log.exists():
            return []
        found = []
        for record in self.log.read_text().split("\x1e"):
            if record:
                pwd, *argv = record.split("\x1f")
                if name is None or argv[0] == name:
                    found.append((pwd, argv))
        return found

    def forget(self) -> None:
        self.log.unlink(missing_ok=True)

    def pwned(self) -> list[str]:
        """Files a hostile value made by running (`touch PWNED...`, `> PWNED...`, `pwned`)."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.name.startswith("PWNED"))
