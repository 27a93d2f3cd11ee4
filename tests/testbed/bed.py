"""A test bed of simulated hosts on one Linux machine (stdlib only, run as root).

Each host hN is a network namespace `tbhN` (eth0 = 10.200.0.(10+N)/24 on the bridge tb-br0 =
10.200.0.1/24 of the root namespace) plus a persistent mount + UTS namespace in which per-host
folders (/var/lib/fab-bluegreen-bed/hosts/hN/...) are bind-mounted over /run, /tmp, /home, /root, /srv, /opt,
/var/lib/docker, /var/log, /var/lib/nginx, /etc/nginx, /etc/ssh, /etc/docker, /etc/hosts and
/etc/hostname. Inside it run its own dockerd, sshd (port 22, key-only) and nginx (:80, proxying to
`upstream app_backend` from /etc/nginx/conf.d/app_upstream.conf). All of a host's processes live in
the cgroup `fbg-hN` (cpu, cpuacct, cpuset, memory; docker's cgroup-parent), on which `cpus` sets a
CFS quota for the whole host.

Slots: several beds can run side by side on one machine (parallel test workers, developers), each
in its own slot K (FBG_BED_SLOT=K, default 0): its own bridge tb-brK on 10.200.K.0/24, namespaces
tbhN (slot 0) or tbKhN, cgroups fbg-hN or fbgK-hN, host folders and state folder. Host names (h1, h2,
...) repeat across slots: each slot has its own ssh_config.

CLI: python -m tests.testbed up --hosts N [--cpus C] | down | status
API: Bed(state_dir=None, slot=None).up(n, cpus=None) / .down() / .hosts ; ensure_up(n, cpus=None) -> Bed
"""
from __future__ import annotations

import grp
import io
import json
import os
import pwd
import shutil
import signal
import socket
import shlex
import subprocess
import tarfile
import fcntl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from . import pyimage

REPO_ROOT = Path(__file__).resolve().parents[2]
BRIDGE = "tb-br0"
BRIDGE_IP = "10.200.0.1"
NETNS_PREFIX = "tbh"
CGROUP_PREFIX = "fbg-h"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CG_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory")
DEPLOY_USER = "deploy"
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # a new one at each boot (Host.new_boot_id)
NOSUDO_USER = "nosudo"
SUDOERS_FILE = Path("/etc/sudoers.d/fbg-testbed")
# Bound over the host's own paths, in this order: /tmp last, since folders bound before it may live under /tmp.
BIND_DIRS = ("/run", "/home", "/root", "/srv", "/opt", "/var/lib/docker", "/var/log",
             "/var/lib/nginx", "/etc/nginx", "/etc/ssh", "/etc/docker", "/tmp")
BIND_FILES = ("/etc/hosts", "/etc/hostname")
HOSTS_DIR = "/var/lib/fab-bluegreen-bed/hosts"
BED_ROOT = "/var/lib/fab-bluegreen-bed"
MAX_SLOT = 99
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INITIAL_UPSTREAM = "upstream app_backend { server 127.0.0.1:18001; }\n"
IMAGE_BUSYBOX = "fbg/busybox:1"
IMAGE_REDIS = "fbg/redis:7"


class BedError(RuntimeError):
    """The bed could not be built or torn down; the message says why."""


class CommandError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (f"command {self.cmd!r} exited {self.returncode}\n"
                f"--- stdout ---\n{self.stdout or ''}--- stderr ---\n{self.stderr or ''}")


def host_ip(i: int, slot: int = 0) -> str:
    return f"10.200.{slot}.{10 + i}"


def env_slot() -> int:
    """The bed slot this process uses: FBG_BED_SLOT (default 0)."""
    raw = os.environ.get("FBG_BED_SLOT", "0") or "0"
    if not raw.isdigit() or int(raw) > MAX_SLOT:
        raise BedError(f"FBG_BED_SLOT={raw!r}: expected a whole number from 0 to {MAX_SLOT}")
    return int(raw)


class _MachineLock:
    """One bed at a time changes what all slots share (users, sudoers): a file lock."""

    def __enter__(self):
        Path(BED_ROOT).mkdir(parents=True, exist_ok=True)
        self._f = open(Path(BED_ROOT) / ".lock", "w")
        fcntl.flock(self._f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()


def _sh(cmd: list[str] | str, check: bool = True, input: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True,
                         input=input, timeout=timeout)
    if check and res.returncode != 0:
        raise CommandError(res.returncode, cmd, res.stdout, res.stderr)
    return res


def _mountpoints() -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            out.append(mp.encode().decode("unicode_escape"))
    return out


def _cg_dirs(name: str, all_hierarchies: bool = False) -> list[Path]:
    """The cgroup directory `name` in our controllers (or in every mounted hierarchy)."""
    seen, out = set(), []
    roots = sorted(CGROUP_ROOT.iterdir()) if all_hierarchies else [CGROUP_ROOT / c for c in CG_CONTROLLERS]
    for root in roots:
        if not (root / "cgroup.procs").exists():
            continue
        real = root.resolve()
        if real in seen:
            continue
        seen.add(real)
        out.append(real / name)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _wait_for(ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise BedError(what)
        time.sleep(0.1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class Host:
    def __init__(self, bed: "Bed", index: int):
        self.bed = bed
        self.index = index
        self.name = f"h{index}"
        self.ip = host_ip(index, bed.slot)
        self.netns = f"{bed.netns_prefix}{index}"
        self.cgroup = f"{bed.cgroup_prefix}{index}"
        self.veth = f"tbv{index}" if not bed.slot else f"tb{bed.slot}v{index}"
        self.root = bed.hosts_dir / self.name
        self.mnt_ns = bed.state_dir / "ns" / f"{self.name}.mnt"
        self.uts_ns = bed.state_dir / "ns" / f"{self.name}.uts"

    def __repr__(self) -> str:
        return f"Host({self.name}, {self.ip})"

    @property
    def home(self) -> Path:
        """/home/deploy of this host, seen from the root namespace."""
        return self.root / "home" / DEPLOY_USER

    def path(self, inside: str) -> Path:
        """A path inside the host (absolute, e.g. /etc/nginx/conf.d/x) seen from the root namespace,
        for the bind-mounted folders."""
        return self.root / inside.lstrip("/")

    def enter_argv(self) -> list[str]:
        """argv prefix that runs a command as root inside this host: in its cgroup and namespaces."""
        procs = " ".join(str(d / "cgroup.procs") for d in _cg_dirs(self.cgroup))
        return ["sh", "-c", f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"', "sh",
                "nsenter", f"--net=/run/netns/{self.netns}", f"--mount={self.mnt_ns}",
                f"--uts={self.uts_ns}", "--"]

    def run(self, cmd: str, check: bool = True, timeout: float = 60,
            input: str | None = None, user: str | None = None) -> subprocess.CompletedProcess:
        """Run `sh -c cmd` as root (or as `user`, by way of runuser -l) inside the host."""
        if not Path(f"/run/netns/{self.netns}").exists():
            raise BedError(f"host {self.name} is not up (run: python -m tests.testbed up)")
        argv = ["sh", "-c", cmd] if user is None else ["runuser", "-l", user, "-c", cmd]
        res = subprocess.run(self.enter_argv() + argv, capture_output=True, text=True, input=input,
                             timeout=timeout, env=_clean_env(), cwd="/")
        if check and res.returncode != 0:
            raise CommandError(res.returncode, f"[{self.name}] {cmd}", res.stdout, res.stderr)
        return res

    def put_dir(self, src: Path | str, dest_rel_home: str, clean: bool = False) -> Path:
        """Copy folder `src` to ~deploy/dest_rel_home of this host, owned by deploy. With clean=True
        the destination is removed first. Returns the destination (root-namespace path)."""
        dest = self.home / dest_rel_home
        if clean and dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        uid, gid = self.bed.deploy_ids()
        parents = [p for p in dest.parents if p != self.home and self.home in p.parents]
        for p in [*parents, dest, *dest.rglob("*")]:
            os.lchown(p, uid, gid)
        return dest

    def write_nginx_config(self, stock: bool = False) -> None:
        """/etc/nginx of this host: a copy of the machine's own. The bed's (stock=False): without the
        default site, with its own site proxying to conf.d/app_upstream.conf (blue's port). The
        package's as installed (stock=True): the default site enabled, no site or upstream file of
        the app. The folder stays (it is bind-mounted inside the host); its contents are replaced."""
        etc = self.path("/etc/nginx")
        etc.mkdir(parents=True, exist_ok=True)
        for f in etc.iterdir():
            shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
        shutil.copytree("/etc/nginx", etc, symlinks=True, dirs_exist_ok=True)
        for f in ("sites-enabled/app", "sites-available/app", "conf.d/app_upstream.conf", "conf.d/app.conf"):
            (etc / f).unlink(missing_ok=True)  # the machine's own may hold leftovers of an app
        if stock:
            default = etc / "sites-enabled/default"
            if not default.exists() and not default.is_symlink():
                default.symlink_to("/etc/nginx/sites-available/default")
            return
        for f in (etc / "sites-enabled").iterdir():
            f.unlink()
        (etc / "sites-enabled/app").write_text(NGINX_SITE)
        up = etc / "conf.d/app_upstream.conf"
        up.write_text(INITIAL_UPSTREAM)
        os.chown(up, 0, 0)
        os.chmod(up, 0o644)

    def stock_nginx(self) -> None:
        """A host as a new user's is before `fab setup`: the packaged nginx configuration (the Debian
        default site enabled, `listen 80 default_server`; no app site, no upstream file) and no
        ~/app folder. nginx reloads it."""
        self.write_nginx_config(stock=True)
        shutil.rmtree(self.home / "app", ignore_errors=True)
        self.reload_nginx()

    def reload_nginx(self, timeout: float = 10) -> None:
        """nginx -t, a reload, and the wait until it serves the new configuration: new workers, none
        of the old ones taking connections (a reload only signals the master, and returns at once)."""
        workers = ("m=$(cat /run/nginx.pid); for p in $(pgrep -P \"$m\"); do case \"$(tr '\\0' ' ' < /proc/$p/cmdline)\" "
                   "in *'shutting down'*) ;; *'worker process'*) echo $p;; esac; done")
        before = set(self.run(workers).stdout.split())
        self.run("nginx -t -q && nginx -s reload")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = set(self.run(workers).stdout.split())
            if now and not now & before:
                return
            time.sleep(0.05)
        raise BedError(f"{self.name}: nginx did not take up its new configuration within {timeout:g} s")

    # -- variants: where real hosts differ from the bed -----------------------------------------
    def ssh_only_from(self, ip: str | None) -> None:
        """Let sshd accept logins only from `ip` (a host reached only through another one, by
        ProxyJump), or from anywhere again with None. sshd re-reads its config on SIGHUP."""
        drop_in = self.path("/etc/ssh/sshd_config.d/fbg-variant.conf")
        drop_in.parent.mkdir(exist_ok=True)
        if ip is None:
            drop_in.unlink(missing_ok=True)
        else:
            drop_in.write_text(f"Match Address *,!{ip}\n    DenyUsers *\n")
        self.run(f"/usr/sbin/sshd -t -f /etc/ssh/sshd_config && kill -HUP $(cat /run/sshd.pid)")
        time.sleep(0.3)  # sshd re-executes itself

    def saved_layer_sizes(self, image: str) -> list[int]:
        """The bytes of each layer's tar of an image of this host, bottom first, as `docker save`
        writes them (what an image built elsewhere sends per layer, before compression)."""
        out = self.run(f"docker save {image} -o /tmp/fbg-saved.tar && tar xOf /tmp/fbg-saved.tar manifest.json && "
                       "echo && tar tvf /tmp/fbg-saved.tar; rm -f /tmp/fbg-saved.tar", timeout=300).stdout
        manifest, listing = out.split("\n", 1)
        sizes = {line.split()[-1]: int(line.split()[2]) for line in listing.splitlines() if line.strip()}
        return [sizes[layer] for layer in json.loads(manifest)[0]["Layers"]]

    # -- checks -------------------------------------------------------------------------------
    def docker_ping(self) -> bool:
        sock = self.root / "run" / "docker.sock"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(sock))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b" 200 " in s.recv(200)
        except OSError:
            return False

    def port_open(self, port: int) -> bool:
        try:
            with socket.create_connection((self.ip, port), timeout=1):
                return True
        except OSError:
            return False

    def healthy(self) -> bool:
        return self.docker_ping() and self.port_open(22) and self.port_open(80)

    def pids(self) -> set[int]:
        """Processes that belong to this host: in its cgroups (docker's children included) or in its
        mount / network namespace."""
        pids: set[int] = set()
        for d in _cg_dirs(self.cgroup, all_hierarchies=True):
            for folder, _, files in os.walk(d):  # os.walk skips a folder removed under it (a container
                if "cgroup.procs" in files:  # that stops while the bed goes down); rglob raises
                    try:
                        pids.update(int(x) for x in Path(folder, "cgroup.procs").read_text().split())
                    except OSError:
                        pass
        inodes = set()
        for f in (self.mnt_ns, Path(f"/run/netns/{self.netns}")):
            try:
                if f in map(Path, _mountpoints()):
                    inodes.add(os.stat(f).st_ino)
            except OSError:
                pass
        if inodes:
            for p in Path("/proc").iterdir():
                if not p.name.isdigit():
                    continue
                for kind in ("mnt", "net"):
                    try:
                        if os.stat(p / "ns" / kind).st_ino in inodes:
                            pids.add(int(p.name))
                    except OSError:
                        pass
        pids.discard(os.getpid())
        return pids

    # -- a reboot -----------------------------------------------------------------------------
    def reboot(self, power_cut: bool = False, at_boot=(), timeout: float = 60) -> None:
        """Restart the host as a shutdown and a boot do (testbed recipe, pitfall 14): dockerd gets
        SIGTERM and is waited for (it stops every container), then each of `at_boot` (callables
        taking the host: what the host runs at boot) runs, then dockerd starts again as the bed
        starts it, which starts the containers their restart policy says. power_cut=True first
        kills every process of the SSH users on the host and what they started (fab's session, the
        guard, a lift), by PID, with SIGKILL: nothing of theirs gets to finish."""
        if power_cut:
            self.kill_users_processes(timeout)
        dockerd = self.bed._daemon_pids(self)["dockerd"]
        if _pid_alive(dockerd):
            os.kill(dockerd, signal.SIGTERM)
        _wait_for(lambda: not _pid_alive(dockerd), timeout,
                  f"{self.name}: dockerd (pid {dockerd}) did not exit after SIGTERM")
        self.new_boot_id()
        for step in at_boot:
            step(self)
        self.bed._spawn(self, "dockerd", ["dockerd", "--config-file", "/etc/docker/daemon.json"])
        _wait_for(self.docker_ping, timeout, f"{self.name}: dockerd did not answer after the reboot")

    def new_boot_id(self) -> str:
        """A boot gives the host a new /proc/sys/kernel/random/boot_id: a file bind-mounted over it in
        the host's own mount namespace (the machine's kernel, and the other hosts, keep theirs)."""
        boot_id = str(uuid.uuid4())
        path = self.root / "boot_id"  # not under the checkout: a clone under /tmp is not seen in the host
        path.write_text(boot_id + "\n")
        path.chmod(0o644)
        self.run(f"umount {BOOT_ID} 2>/dev/null; mount --bind {shlex.quote(str(path))} {BOOT_ID}")
        assert self.run(f"cat {BOOT_ID}").stdout.strip() == boot_id, f"{self.name}: the boot id did not change"
        return boot_id

    def kill_users_processes(self, timeout: float = 30) -> list[int]:
        """SIGKILL every process of this host (its mount namespace) owned by the SSH users, and
        every descendant of one (a sudo they ran); waits until they are gone. Returns their PIDs."""
        uids = {pwd.getpwnam(u).pw_uid for u in (DEPLOY_USER, NOSUDO_USER)}
        mnt = os.stat(self.mnt_ns).st_ino
        procs: dict[int, tuple[int, int, int]] = {}  # pid -> (uid, ppid, mount namespace inode)
        for pid in self.pids():
            try:
                status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if ":" in line)
                procs[pid] = (int(status["Uid"].split()[0]), int(status["PPid"]), os.stat(f"/proc/{pid}/ns/mnt").st_ino)
            except (OSError, KeyError, ValueError):
                continue
        doomed = {pid for pid, (uid, _, ns) in procs.items() if uid in uids and ns == mnt}
        grew = True
        while grew:
            more = {pid for pid, (_, ppid, _) in procs.items() if ppid in doomed} - doomed
            doomed |= more
            grew = bool(more)
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_for(lambda: not any(_pid_alive(p) for p in doomed), timeout,
                  f"{self.name}: processes {sorted(doomed)} outlived SIGKILL")
        return sorted(doomed)


def _clean_env() -> dict:
    return {"PATH": CLEAN_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root"}


class Bed:
    def __init__(self, state_dir: Path | str | None = None, slot: int | None = None):
        self.slot = env_slot() if slot is None else slot
        if not 0 <= self.slot <= MAX_SLOT:
            raise BedError(f"bed slot {self.slot}: expected 0 to {MAX_SLOT}")
        k = self.slot
        self.bridge = BRIDGE if not k else f"tb-br{k}"
        self.bridge_ip = f"10.200.{k}.1"
        self.netns_prefix = NETNS_PREFIX if not k else f"tb{k}h"
        self.cgroup_prefix = CGROUP_PREFIX if not k else f"fbg{k}-h"
        if state_dir is None:
            state_dir = os.environ.get("FBG_BED_DIR") or REPO_ROOT / ".bed"
            state_dir = Path(state_dir) / f"slot{k}" if k else state_dir
        self.state_dir = Path(state_dir).resolve()
        self.key = self.state_dir / "id_ed25519"
        self.known_hosts = self.state_dir / "known_hosts"
        self.ssh_config = self.state_dir / "ssh_config"
        self.state_file = self.state_dir / "state.json"
        self.cache_dir = self.state_dir / "cache"
        # Per-host folders live outside every path bound over in a host (/home, /root, /tmp, ...),
        # so that they stay reachable whatever folder the repository is cloned to.
        hosts_dir = Path(os.environ.get("FBG_BED_HOSTS_DIR") or HOSTS_DIR)
        self.hosts_dir = hosts_dir if not k else hosts_dir.parent / f"slot{k}" / hosts_dir.name
        self.log = print

    # -- state --------------------------------------------------------------------------------
    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def hosts(self) -> list[Host]:
        return [Host(self, i) for i in range(1, int(self.state().get("hosts", 0)) + 1)]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def cpus(self) -> float | None:
        return self.state().get("cpus")

    def is_up(self, n: int = 1) -> bool:
        hosts = self.hosts
        return len(hosts) >= n and all(h.healthy() for h in hosts)

    @staticmethod
    def deploy_ids() -> tuple[int, int]:
        pw = pwd.getpwnam(DEPLOY_USER)
        return pw.pw_uid, pw.pw_gid

    # -- up -----------------------------------------------------------------------------------
    def up(self, n: int, cpus: float | None = None) -> list[Host]:
        if os.geteuid() != 0:
            raise BedError("the test bed must be built as root")
        if n < 1 or n > 200:
            raise BedError(f"--hosts must be between 1 and 200, not {n}")
        if self.state() or self._leftovers():
            self.log("bed: leftovers of an earlier bed found: tearing them down first")
            self.down()
        t0 = time.monotonic()
        try:
            self._up(n, cpus)
        except BaseException as e:
            detail = self._failure_detail()
            if os.environ.get("FBG_BED_KEEP") != "1":
                try:
                    self.down(quiet=True)
                except Exception as e2:  # keep the first error
                    detail += f"\n(teardown after the failure also failed: {e2})"
            if isinstance(e, BedError):
                raise BedError(f"{e}{detail}") from e
            raise BedError(f"bed up failed: {type(e).__name__}: {e}{detail}") from e
        self.log(f"bed: {n} host(s) up in {time.monotonic() - t0:.1f}s"
                 + (f" (cpus={cpus} per host)" if cpus else ""))
        return self.hosts

    def _failure_detail(self) -> str:
        out = ""
        for log in sorted(self.hosts_dir.glob("*/var/log/*.log")):  # the daemons' own logs, per host
            try:
                tail = log.read_text(errors="replace").splitlines()[-8:]
            except OSError:
                continue
            if tail:
                out += f"\n--- {log.relative_to(self.hosts_dir)} (tail) ---\n" + "\n".join(tail)
        return out

    def _check_prereqs(self) -> None:
        missing = [b for b in ("dockerd", "docker", "sshd", "nginx", "nsenter", "unshare", "ip",
                               "ssh-keygen", "sudo", "busybox", "redis-server", "redis-cli",
                               "runuser", "useradd")
                   if not shutil.which(b, path=CLEAN_PATH)]
        if missing:
            raise BedError(f"missing programs: {' '.join(missing)} (run scripts/install.sh)")
        if _sh(["docker", "compose", "version"], check=False).returncode != 0:
            raise BedError("`docker compose` (v2 CLI plugin) is missing (run scripts/install.sh)")
        for c in CG_CONTROLLERS:
            if not (CGROUP_ROOT / c / "cgroup.procs").exists():
                raise BedError(f"cgroup v1 controller {c} not mounted at {CGROUP_ROOT / c}")

    def _up(self, n: int, cpus: float | None) -> None:
        self._check_prereqs()
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        for d in ("ns", "cache"):
            (self.state_dir / d).mkdir(parents=True, exist_ok=True)
        with _MachineLock():
            self._ensure_users()
        self._ensure_key()
        self._ensure_private_ns_dir()
        images = self._ensure_image_tars()
        Path("/var/lib/docker").mkdir(exist_ok=True)  # a mount point for the per-host folder
        hosts = [Host(self, i) for i in range(1, n + 1)]
        self.state_file.write_text(json.dumps({"hosts": n, "cpus": cpus, "started": time.time()}))
        _sh(f"ip link add {self.bridge} type bridge && ip addr add {self.bridge_ip}/24 dev {self.bridge}"
            f" && ip link set {self.bridge} up")
        with ThreadPoolExecutor(max_workers=min(8, n)) as pool:
            list(pool.map(lambda h: self._make_host(h, hosts, cpus), hosts))
            list(pool.map(self._start_daemons, hosts))
            list(pool.map(lambda h: self._wait_ready(h), hosts))
            list(pool.map(lambda h: self._import_images(h, images), hosts))
        self._write_client_files(hosts)

    def _ensure_users(self) -> None:
        try:
            grp.getgrnam("docker")
        except KeyError:
            _sh(["groupadd", "--system", "docker"])
        for user in (DEPLOY_USER, NOSUDO_USER):
            try:
                pwd.getpwnam(user)
            except KeyError:
                groups = ["-G", "docker"] if user == DEPLOY_USER else []
                _sh(["useradd", "-M", "-d", f"/home/{user}", "-s", "/bin/bash", "-U", *groups, user])
            # sshd with UsePAM no refuses key logins for a locked ('!') account
            _sh(["usermod", "-p", "*", user])
        _sh(["usermod", "-aG", "docker", DEPLOY_USER])
        want = f"{DEPLOY_USER} ALL=(ALL) NOPASSWD: ALL\n"
        if not SUDOERS_FILE.exists() or SUDOERS_FILE.read_text() != want:
            tmp = SUDOERS_FILE.with_suffix(".tmp")
            tmp.write_text(want)
            os.chmod(tmp, 0o440)
            _sh(["visudo", "-cf", str(tmp)])
            tmp.rename(SUDOERS_FILE)

    def _ensure_key(self) -> None:
        if not self.key.exists():
            _sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fbg-testbed", "-f", str(self.key)])
        os.chmod(self.key, 0o600)

    def _ensure_private_ns_dir(self) -> None:
        ns = self.state_dir / "ns"
        if str(ns) not in _mountpoints():
            _sh(["mount", "--bind", str(ns), str(ns)])
        _sh(["mount", "--make-private", str(ns)])

    # -- images -------------------------------------------------------------------------------
    def _ensure_image_tars(self) -> dict[str, Path]:
        bb = self.cache_dir / "busybox.tar"
        rd = self.cache_dir / "redis.tar"
        # rebuilt when the machine's busybox or redis is newer than the cached tar
        sources = [shutil.which("busybox", path=CLEAN_PATH), os.path.realpath("/usr/bin/redis-server"),
                   "/usr/bin/redis-cli"]
        newest = max(os.stat(p).st_mtime for p in sources if p and os.path.exists(p))
        for tar in (bb, rd):
            if tar.exists() and tar.stat().st_mtime < newest:
                tar.unlink()
        if not bb.exists():
            _write_tar(bb, _busybox_entries())
        if not rd.exists():
            _write_tar(rd, _busybox_entries() + _redis_entries())
        # Debian's python3.11 with Celery under /opt/site (examples/celery-app); cached, ~10 s to build
        py = pyimage.build_tar(self.cache_dir / "python.tar")
        return {IMAGE_BUSYBOX: bb, IMAGE_REDIS: rd, pyimage.IMAGE_PYTHON: py}

    def ensure_images(self) -> None:
        """Import the base images a reused bed lacks (one built by an older version of this file)."""
        names = (IMAGE_BUSYBOX, IMAGE_REDIS, pyimage.IMAGE_PYTHON)
        lacking = [h for h in self.hosts
                   if h.run(f"docker image inspect {' '.join(names)}", check=False).returncode != 0]
        if lacking:
            images = self._ensure_image_tars()
            with ThreadPoolExecutor(max_workers=min(8, len(lacking))) as pool:
                list(pool.map(lambda h: self._import_images(h, images), lacking))

    def _import_images(self, h: Host, images: dict[str, Path]) -> None:
        # The tars go through the host's own /srv: the cache folder may sit under a path that is
        # bound over inside the host (a clone under /tmp or /home).
        inbox = h.path("/srv/fbg-images")
        inbox.mkdir(parents=True, exist_ok=True)
        for tar in images.values():
            shutil.copyfile(tar, inbox / tar.name)
        bb, rd = (f"/srv/fbg-images/{images[i].name}" for i in (IMAGE_BUSYBOX, IMAGE_REDIS))
        h.run(f"docker import --change 'CMD [\"sh\"]' {bb} {IMAGE_BUSYBOX}"
              f" >/dev/null && docker import --change 'WORKDIR /data' --change 'EXPOSE 6379'"
              f" --change 'CMD [\"redis-server\",\"--save\",\"\",\"--appendonly\",\"no\","
              f"\"--protected-mode\",\"no\"]' {rd} {IMAGE_REDIS} >/dev/null"
              f" && {pyimage.import_command('/srv/fbg-images/' + images[pyimage.IMAGE_PYTHON].name)} >/dev/null",
              timeout=300)
        shutil.rmtree(inbox)

    # -- one host -----------------------------------------------------------------------------
    def _make_host(self, h: Host, hosts: list[Host], cpus: float | None) -> None:
        r = h.root
        if r.exists():
            shutil.rmtree(r)
        for d in BIND_DIRS:
            (r / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "tmp", 0o1777)
        os.chmod(r / "root", 0o700)
        (r / "etc/hostname").write_text(f"{h.name}\n")
        (r / "etc/hosts").write_text(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            + "".join(f"{o.ip}\t{o.name}\n" for o in hosts))
        # /run
        (r / "run/sshd").mkdir(mode=0o755)
        (r / "run/lock").mkdir(mode=0o1777)
        os.chmod(r / "run/lock", 0o1777)
        # /var/log
        (r / "var/log/nginx").mkdir()
        # homes: authorized key for deploy and nosudo
        pub = self.key.with_suffix(".pub").read_text()
        for user in (DEPLOY_USER, NOSUDO_USER):
            pw = pwd.getpwnam(user)
            home = r / "home" / user
            (home / ".ssh").mkdir(parents=True)
            (home / ".ssh/authorized_keys").write_text(pub)
            os.chmod(home, 0o755)
            os.chmod(home / ".ssh", 0o700)
            os.chmod(home / ".ssh/authorized_keys", 0o600)
            for p in (home, home / ".ssh", home / ".ssh/authorized_keys"):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        # /etc/ssh: the machine's client config + our sshd_config + per-host host keys
        for f in ("ssh_config", "moduli"):
            if Path("/etc/ssh", f).exists():
                shutil.copy2(Path("/etc/ssh", f), r / "etc/ssh" / f)
        (r / "etc/ssh/sshd_config").write_text(SSHD_CONFIG)
        (r / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
        _sh(["ssh-keygen", "-A", "-f", str(r)])
        # /etc/nginx: the machine's config minus the default site, plus ours
        h.write_nginx_config(stock=False)
        # /etc/docker
        (r / "etc/docker/daemon.json").write_text(json.dumps(self._daemon_json(h), indent=2) + "\n")
        # cgroup for the whole host
        self._make_cgroup(h, cpus)
        # network namespace + veth on the bridge
        v = h.veth
        _sh(f"ip netns add {h.netns}"
            f" && ip link add {v} type veth peer name eth0 netns {h.netns}"
            f" && ip link set {v} master {self.bridge} up"
            f" && ip -n {h.netns} addr add {h.ip}/24 dev eth0"
            f" && ip -n {h.netns} link set eth0 up && ip -n {h.netns} link set lo up"
            # forwarding inside the host only (docker warns without it); no default route leaves
            f" && ip netns exec {h.netns} sysctl -qw net.ipv4.ip_forward=1")
        # persistent mount + UTS namespace with the per-host folders bound over the system paths
        for f in (h.mnt_ns, h.uts_ns):
            f.touch()
        _sh(["unshare", f"--mount={h.mnt_ns}", f"--uts={h.uts_ns}", "--propagation", "private",
             "sh", "-c", _ns_setup_script(h)])

    def _daemon_json(self, h: Host, driver: str = "overlay2") -> dict:
        return {
            "iptables": False, "ip-masq": False, "ip-forward": False,
            "storage-driver": driver,
            "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "2"},
            "cgroup-parent": f"/{h.cgroup}",
            "exec-opts": ["native.cgroupdriver=cgroupfs"],
            "shutdown-timeout": 3,
        }

    def _make_cgroup(self, h: Host, cpus: float | None) -> None:
        for d in _cg_dirs(h.cgroup):
            d.mkdir(exist_ok=True)
            if (d / "cpuset.cpus").exists():  # cpuset starts empty: copy the parent's
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((d.parent / f).read_text())
        self.set_cpus(cpus, [h])

    def set_cpus(self, cpus: float | None, hosts: list[Host] | None = None) -> None:
        """Set (or with None lift) the CFS quota of whole hosts, in CPUs."""
        for h in hosts if hosts is not None else self.hosts:
            for d in _cg_dirs(h.cgroup):
                if (d / "cpu.cfs_quota_us").exists():
                    (d / "cpu.cfs_period_us").write_text("100000")
                    (d / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)) if cpus else "-1")
        if hosts is None:
            st = self.state()
            if st:
                st["cpus"] = cpus
                self.state_file.write_text(json.dumps(st))

    def _spawn(self, h: Host, name: str, argv: list[str]) -> int:
        log = open(h.root / "var/log" / f"{name}.log", "ab")
        p = subprocess.Popen(h.enter_argv() + argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True, env=_clean_env(), cwd="/")
        log.close()
        (self.state_dir / "pids").mkdir(exist_ok=True)
        with open(self.state_dir / "pids" / h.name, "a") as f:
            f.write(f"{p.pid} {name}\n")
        return p.pid

    def _start_daemons(self, h: Host) -> None:
        self._spawn(h, "dockerd", ["dockerd", "--config-file", "/etc/docker/daemon.json"])
        self._spawn(h, "sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"])
        self._spawn(h, "nginx", ["nginx", "-g", "daemon off;"])

    def _wait_ready(self, h: Host, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        retried_vfs = False
        while True:
            # sshd writes its pid file once listening (a bare TCP probe would clutter its log)
            ok = {"dockerd": h.docker_ping(), "sshd": (h.root / "run/sshd.pid").exists(),
                  "nginx": h.port_open(80)}
            if all(ok.values()):
                return
            dead = [name for name, pid in self._daemon_pids(h).items()
                    if not ok[name] and not _pid_alive(pid)]
            if dead == ["dockerd"] and not retried_vfs and "overlay" in \
                    (h.root / "var/log/dockerd.log").read_text(errors="replace"):
                # overlay2 unsupported on this file system: fall back to vfs once
                self.log(f"bed: {h.name}: overlay2 failed, falling back to vfs")
                (h.root / "etc/docker/daemon.json").write_text(
                    json.dumps(self._daemon_json(h, "vfs"), indent=2) + "\n")
                self._spawn(h, "dockerd", ["dockerd", "--config-file", "/etc/docker/daemon.json"])
                retried_vfs = True
            elif dead:
                raise BedError(f"bed: {h.name}: {', '.join(dead)} exited at start"
                               f" (logs in {h.root / 'var/log'})")
            if time.monotonic() > deadline:
                bad = ", ".join(k for k, v in ok.items() if not v)
                raise BedError(f"bed: {h.name}: {bad} not ready after {timeout:.0f}s")
            time.sleep(0.05)

    def _daemon_pids(self, h: Host) -> dict[str, int]:
        """The latest PID the bed started for each daemon of host h (reaping exited ones)."""
        pids: dict[str, int] = {}
        for line in (self.state_dir / "pids" / h.name).read_text().splitlines():
            pid, name = line.split()
            _reap(int(pid))
            pids[name] = int(pid)
        return pids

    # -- client side --------------------------------------------------------------------------
    def _write_client_files(self, hosts: list[Host]) -> None:
        kh, cfg = [], []
        for h in hosts:
            for pub in sorted((h.root / "etc/ssh").glob("ssh_host_*_key.pub")):
                typ, b64 = pub.read_text().split()[:2]
                kh.append(f"{h.name},{h.ip} {typ} {b64}\n")
            cfg.append(f"Host {h.name}\n  HostName {h.ip}\n  User {DEPLOY_USER}\n"
                       f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n"
                       f"  UserKnownHostsFile {self.known_hosts}\n  StrictHostKeyChecking yes\n"
                       f"  ConnectTimeout 5\n\n")
        self.known_hosts.write_text("".join(kh))
        self.ssh_config.write_text("".join(cfg))

    def ssh_argv(self, host: str, user: str | None = None) -> list[str]:
        """ssh argv (client side) to reach `host` with the bed's config; append the command."""
        argv = ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes"]
        if user:
            argv += ["-l", user]
        return argv + [host]

    # -- down ---------------------------------------------------------------------------------
    def _leftovers(self) -> bool:
        return bool(self._leftover_indexes()) or _link_exists(self.bridge)

    def _leftover_indexes(self) -> set[int]:
        idx: set[int] = set(range(1, int(self.state().get("hosts", 0)) + 1))
        netns = Path("/run/netns")
        if netns.is_dir():
            pre = self.netns_prefix
            idx |= {int(p.name[len(pre):]) for p in netns.iterdir()
                    if p.name.startswith(pre) and p.name[len(pre):].isdigit()}
        for root in CGROUP_ROOT.iterdir():
            if root.is_dir():
                try:
                    pre = self.cgroup_prefix
                    idx |= {int(p.name[len(pre):]) for p in root.iterdir()
                            if p.name.startswith(pre) and p.name[len(pre):].isdigit()}
                except OSError:
                    pass
        for folder, pat in ((self.hosts_dir, "h*"), (self.state_dir / "ns", "h*.mnt")):
            for p in folder.glob(pat):
                num = p.name.split(".")[0][1:]
                if num.isdigit():
                    idx.add(int(num))
        return idx

    def down(self, quiet: bool = False) -> None:
        if os.geteuid() != 0:
            raise BedError("the test bed must be torn down as root")
        t0 = time.monotonic()
        indexes = sorted(self._leftover_indexes())
        hosts = [Host(self, i) for i in indexes]
        errors: list[str] = []
        # 1. kill every process of every host (cgroup members and namespace members), reap ours
        recorded: set[int] = set()
        for f in (self.state_dir / "pids").glob("*") if (self.state_dir / "pids").is_dir() else []:
            recorded |= {int(l.split()[0]) for l in f.read_text().splitlines() if l.strip()}
        deadline = time.monotonic() + 15
        while True:
            pids = set().union(*(h.pids() for h in hosts)) if hosts else set()
            live = {p for p in pids | recorded if _pid_alive(p)} - {os.getpid()}
            for p in pids | recorded:
                _reap(p)
            live = {p for p in live if _pid_alive(p)}
            if not live:
                break
            if time.monotonic() > deadline:
                errors.append(f"processes still alive: {sorted(live)}")
                break
            for p in live:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        # 2. namespaces, links
        mps = set(_mountpoints())
        for h in hosts:
            for f in (h.mnt_ns, h.uts_ns):
                if str(f) in mps:
                    _sh(["umount", "-l", str(f)], check=False)
            if Path(f"/run/netns/{h.netns}").exists():
                r = _sh(["ip", "netns", "del", h.netns], check=False)
                if r.returncode:
                    errors.append(r.stderr.strip())
            if _link_exists(h.veth):
                _sh(["ip", "link", "del", h.veth], check=False)
        if _link_exists(self.bridge):
            _sh(["ip", "link", "del", self.bridge], check=False)
        # 3. cgroups (docker's children in every hierarchy too); zombies may delay the rmdir
        for h in hosts:
            for d in _cg_dirs(h.cgroup, all_hierarchies=True):
                if not d.exists():
                    continue
                end = time.monotonic() + 10
                while d.exists():
                    try:
                        for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                                          key=lambda p: len(p.parts), reverse=True) + [d]:
                            sub.rmdir()
                    except OSError as e:
                        if time.monotonic() > end:
                            errors.append(f"cannot remove cgroup {d}: {e}")
                            break
                        time.sleep(0.1)
        # 4. files: never follow a mount (there should be none in the root namespace)
        ns_dir = self.state_dir / "ns"
        for mp in sorted(_mountpoints(), key=len, reverse=True):
            if mp.startswith(str(self.hosts_dir) + "/"):
                _sh(["umount", "-l", mp], check=False)
        if str(ns_dir) in set(_mountpoints()):
            _sh(["umount", "-l", str(ns_dir)], check=False)
        shutil.rmtree(self.hosts_dir, ignore_errors=True)
        for p in ("ns", "pids"):
            shutil.rmtree(self.state_dir / p, ignore_errors=True)
        for p in (self.state_file, self.known_hosts, self.ssh_config):
            p.unlink(missing_ok=True)
        if errors:
            raise BedError("bed down incomplete:\n  " + "\n  ".join(errors))
        if hosts and not quiet:
            self.log(f"bed: {len(hosts)} host(s) down in {time.monotonic() - t0:.1f}s")


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _ns_setup_script(h: Host) -> str:
    lines = ["set -e", f"hostname {h.name}", f"R='{h.root}'"]
    for t in BIND_FILES + BIND_DIRS:  # /tmp (last of BIND_DIRS) bound last
        lines.append(
            # lazily unmount this namespace's copies of other mounts under the target (else they stay visible)
            f"awk '{{print $5}}' /proc/self/mountinfo | grep '^{t}/' | sort -r"
            f" | while read -r m; do umount -l \"$m\" 2>/dev/null || true; done")
        lines.append(f"mount --bind \"$R{t}\" {t}")
    return "\n".join(lines) + "\n"


# -- image file lists --------------------------------------------------------------------------
def _busybox_entries() -> list[tuple]:
    """(path, kind, data/target, mode) for a busybox rootfs."""
    bb = shutil.which("busybox", path=CLEAN_PATH)
    applets = _sh([bb, "--list"]).stdout.split()
    ents: list[tuple] = [("bin", "dir", None, 0o755), ("etc", "dir", None, 0o755),
                         ("tmp", "dir", None, 0o1777), ("root", "dir", None, 0o700),
                         ("var", "dir", None, 0o755), ("usr", "dir", None, 0o755),
                         ("usr/bin", "dir", None, 0o755),
                         ("bin/busybox", "file", Path(bb).read_bytes(), 0o755)]
    ents += [(f"bin/{a}", "link", "busybox", 0o777) for a in applets if a != "busybox"]
    ents += [("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\n"
              b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
             ("etc/group", "file", b"root:x:0:\nnogroup:x:65534:\n", 0o644)]
    return ents


def _redis_entries() -> list[tuple]:
    ents: list[tuple] = [("data", "dir", None, 0o755)]
    libs: set[str] = set()
    for b in ("/usr/bin/redis-server", "/usr/bin/redis-cli"):
        for line in _sh(["ldd", b]).stdout.splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
            if path.startswith("/"):
                libs.add(path)
    server = os.path.realpath("/usr/bin/redis-server")
    ents.append((server.lstrip("/"), "file", Path(server).read_bytes(), 0o755))
    if server != "/usr/bin/redis-server":
        ents.append(("usr/bin/redis-server", "link", os.path.basename(server), 0o777))
    ents.append(("usr/bin/redis-cli", "file", Path("/usr/bin/redis-cli").read_bytes(), 0o755))
    for lib in sorted(libs):
        ents.append((lib.lstrip("/"), "file", Path(lib).read_bytes(), 0o755))
    return ents


def _write_tar(dest: Path, entries: list[tuple]) -> None:
    tmp = dest.with_suffix(".part")
    seen: set[str] = set()
    with tarfile.open(tmp, "w") as tf:
        def add_dir(path: str, mode: int = 0o755) -> None:
            if path in seen or path in ("", "."):
                return
            add_dir(os.path.dirname(path))
            ti = tarfile.TarInfo(path)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tf.addfile(ti)
            seen.add(path)
        for path, kind, data, mode in entries:
            if kind == "dir":
                add_dir(os.path.dirname(path))
                if path not in seen:
                    ti = tarfile.TarInfo(path)
                    ti.type, ti.mode = tarfile.DIRTYPE, mode
                    tf.addfile(ti)
                    seen.add(path)
                continue
            if path in seen:
                continue
            add_dir(os.path.dirname(path))
            ti = tarfile.TarInfo(path)
            ti.mode = mode
            if kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            seen.add(path)
    tmp.rename(dest)


SSHD_CONFIG = """\
# fab-bluegreen test bed host
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_rsa_key
PidFile /run/sshd.pid
UsePAM no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
MaxStartups 100:30:200
MaxSessions 100
PrintMotd no
UseDNS no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
# last: a variant's Match blocks (Host.ssh_only_from)
Include /etc/ssh/sshd_config.d/*.conf
"""

NGINX_SITE = """\
# fab-bluegreen test bed: every request goes to the live colour, named in conf.d/app_upstream.conf
server {
    listen 80 default_server;
    server_name _;
    location / {
        proxy_pass http://app_backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_connect_timeout 1s;
        proxy_read_timeout 30s;
    }
}
"""


def ensure_up(n: int = 1, cpus: float | None = None, state_dir: Path | str | None = None) -> Bed:
    """Reuse a running, healthy bed with >= n hosts (setting its CPU quota to `cpus`), or build one."""
    bed = Bed(state_dir)
    if bed.is_up(n):
        if bed.cpus != cpus:
            bed.set_cpus(cpus)
        bed.ensure_images()
        return bed
    bed.up(n, cpus)
    return bed
