"""Setup on one host: what its first deploy needs, made once, idempotently.

    read (one round trip): fab check's checks, then dir, the upstream file, the SSH address and
    the host's name, nginx's whole configuration (nginx -T)
    -> refuse (nothing changed, one reason) when a check setup cannot mend fails: sudo -n,
       docker, compose, nginx's master
    -> plan: dir; the first upstream file (blue's port); a site proxying to the upstream,
       where nginx loads sites (sites-enabled/, else conf.d/), including the upstream file only
       where nginx does not load it already; none when a site proxies to the upstream already
    -> apply (one round trip): make them, nginx -t (failing: removed again), reload
    -> where the host runs systemd and sudo -n works, and it is not there yet: the put-back at boot
       (one round trip: tasks/shell/boot.py); never fatal, a warning where it cannot be made

The packaged default site (`listen 80 default_server`) stays enabled: the new site answers for the
host's name and addresses (server_name), the default one for every other name."""

from __future__ import annotations

import ipaddress
import posixpath
import re
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ..config.schema import HostSettings
from ..result import DRY_RUN, FAILED, READY, REFUSED, SET_UP, SetupResult
from ..shell import boot, site as site_shell
from ..shell.base import MARK
from .check import run_checks
from .remote import Remote, Result

BLOCKING = ("ssh", "check", "sudo", "docker", "compose", "nginx_master")  # checks setup cannot mend
MENDS = ("dir", "upstream_file", "nginx", boot.CHECK)  # failing checks setup mends, or says itself
BOOT_DONE = "put-back at boot registered (a systemd unit, run after docker at each boot)"
DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
CONFIG_FILE = re.compile(r"^# configuration file (/\S+):$")
INCLUDE = re.compile(r"(?:^|[\s;{}])include\s+([^\s;]+)\s*;")


@dataclass
class Nginx:
    """nginx's configuration as `nginx -T` dumps it: each file's text, by path."""

    files: dict[str, str] = field(default_factory=dict)
    fails: str = ""  # nginx -T failed: nginx -t's last line

    @property
    def root(self) -> str:
        """The folder of the main configuration file (/etc/nginx)."""
        return posixpath.dirname(next(iter(self.files), "/etc/nginx/nginx.conf"))

    def includes(self) -> list[str]:
        """Every include pattern, as an absolute path (relative ones are relative to root)."""
        found = []
        for text in self.files.values():
            found += [p if p.startswith("/") else posixpath.join(self.root, p) for p in INCLUDE.findall(_uncommented(text))]
        return found

    def loads(self, path: str) -> bool:
        """Whether an include of nginx's would load a file at `path` (it exists or not)."""
        if path in self.files:
            return True
        return any(posixpath.dirname(p) == posixpath.dirname(path) and fnmatchcase(posixpath.basename(path),
                                                                                  posixpath.basename(p))
                   for p in self.includes())

    @property
    def ipv6(self) -> bool:
        """Whether a loaded site listens on IPv6 port 80 (the packaged default site does, where nginx can)."""
        return any(re.search(r"(?:^|[\s;{}])listen\s+\[::\]:80[\s;]", _uncommented(text)) for text in self.files.values())

    def proxying(self, upstream: str) -> list[str]:
        """The files that proxy to the upstream already (a site of the user's, or setup's own)."""
        to = re.compile(rf"(?:^|[\s;{{}}])proxy_pass\s+https?://{re.escape(upstream)}\s*[;/]")
        return [path for path, text in self.files.items() if to.search(_uncommented(text))]


def _uncommented(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@dataclass
class Facts:
    dir: bool = False
    upstream: bool = False
    address: str = ""  # the host's address the SSH connection came to
    hostname: str = ""
    nginx: Nginx = field(default_factory=Nginx)


def parse(stdout: str) -> Facts:
    """site_shell.facts()'s output (after the checks' lines)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith(MARK) and line[len(MARK):] in ("dir", "upstream", "address", "nginx"):
            current = sections.setdefault(line[len(MARK):], [])
        elif current is not None:
            current.append(line)
    address = sections.get("address", [])
    ssh = address[0].split() if address else []
    facts = Facts(dir="yes" in sections.get("dir", []), upstream="yes" in sections.get("upstream", []),
                  address=ssh[2] if len(ssh) >= 3 else "", hostname=address[1].strip() if len(address) > 1 else "")
    facts.nginx = parse_dump(sections.get("nginx", []))
    return facts


def parse_dump(lines: list[str]) -> Nginx:
    nginx, path = Nginx(), None
    for line in lines:
        if line.startswith(f"{MARK}nginx-fails"):
            nginx.fails = line[len(f"{MARK}nginx-fails"):].strip() or "nginx -t fails"
        elif m := CONFIG_FILE.match(line):
            path = m.group(1)
            nginx.files[path] = ""
        elif path is not None:
            nginx.files[path] += line + "\n"
    return nginx


def server_names(s: HostSettings, facts: Facts) -> list[str]:
    """The names the site answers for: the host's name, the address its SSH target reached, the
    target's own name, what the deploy's verify asks for (127.0.0.1, localhost), health.host if
    set. Host text: only plain DNS names and IP addresses go into nginx's configuration."""
    verify = re.match(r"^https?://([^/:?#]+)", s.switch.verify_url or "")
    candidates = [facts.hostname, facts.address, s.target.host, getattr(s.health, "host", ""),
                  verify.group(1) if verify else "", "localhost", "127.0.0.1"]
    names = []
    for name in candidates:
        name = _address(name) or (name if DNS_NAME.match(name) and not name.isdigit() else "")
        if name and name not in names:
            names.append(name)
    return names


def _address(text: str) -> str:
    """An IP address as nginx matches it in the Host header (IPv6 in brackets); "" for anything else."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if ip.version == 4:
        return str(ip)
    return "" if ip.scope_id else f"[{ip.compressed}]"  # fe80::1%eth0: no Host header names it


@dataclass
class Plan:
    make_dir: bool = False
    upstream: bool = False
    site: str = ""  # the site file to write ("": none)
    text: str = ""
    link: str = ""  # its link in sites-enabled ("": none)
    done: list[str] = field(default_factory=list)  # what it makes, in words
    kept: list[str] = field(default_factory=list)  # what is there already
    refused: str = ""  # why it cannot be made ("": it can)


def plan(s: HostSettings, facts: Facts) -> Plan:
    """What setup makes on a host, from what is there (pure)."""
    p = Plan(make_dir=not facts.dir)
    (p.done if p.make_dir else p.kept).append(f"dir {s.dir}" + (" created" if p.make_dir else ""))
    if s.switch.mode != "nginx":
        p.kept.append(f"nginx left alone (switch.mode = {s.switch.mode!r})")
        return p
    nginx, upstream = facts.nginx, s.switch.upstream_file
    if nginx.fails:
        p.refused = f"nginx -t fails before setup changed anything: {nginx.fails}"
        return p
    p.upstream = not facts.upstream
    if p.upstream:
        p.done.append(f"{upstream} written: {s.switch.upstream_name} -> blue's port {s.port('blue')}")
    else:
        p.kept.append(f"{upstream} (kept as it is)")
    proxying = nginx.proxying(s.switch.upstream_name)
    if proxying:
        p.kept.append(f"site {', '.join(proxying)} (proxies to {s.switch.upstream_name} already)")
        return p
    p.site, p.link = _where(s, nginx)
    if not p.site:
        p.refused = (f"nginx loads no sites from {nginx.root}/sites-enabled/ or {nginx.root}/conf.d/*.conf: add a "
                     f"server with proxy_pass http://{s.switch.upstream_name} to its http block yourself")
        return p
    included = nginx.loads(upstream)
    names = server_names(s, facts)
    p.text = site_shell.site_text(s, names, include="" if included else upstream, ipv6=nginx.ipv6)
    p.done.append(f"site {p.site}" + (f" enabled in {posixpath.dirname(p.link)}/" if p.link else "")
                  + f": port 80 for {' '.join(names)} -> {s.switch.upstream_name}"
                  + ("" if included else f" (it includes {upstream})"))
    defaults = [path for path, text in nginx.files.items() if re.search(r"^\s*listen\s[^;]*default_server", text, re.M)]
    if defaults:
        p.kept.append(f"default site {', '.join(defaults)} (enabled: it answers every other name)")
    return p


def _where(s: HostSettings, nginx: Nginx) -> tuple[str, str]:
    """Where the site goes: (its file, its link in sites-enabled or ""), or ("", "") where nginx
    loads no sites (Debian's sites-enabled/*, else conf.d/*.conf as nginx.org's packages have it)."""
    root = nginx.root
    if nginx.loads(f"{root}/sites-enabled/{s.app}"):
        return f"{root}/sites-available/{s.app}", f"{root}/sites-enabled/{s.app}"
    if nginx.loads(f"{root}/conf.d/{s.app}.conf"):  # never the upstream file itself (app "app_upstream")
        site = f"{root}/conf.d/{s.app}.conf"
        return (site if site != s.switch.upstream_file else f"{root}/conf.d/{s.app}-site.conf"), ""
    return "", ""


def setup(remote: Remote, s: HostSettings, say=lambda msg: None) -> SetupResult:
    started = time.monotonic()
    result = SetupResult(host=s.name, action="setup")
    say("checking the host (as fab check does) and reading nginx's configuration")
    checked, res = run_checks(remote, s, then=site_shell.facts(s), boot_putback=True)
    blocking = [f"{name}: {detail}" for level, name, detail in checked.items if level == "fail" and name in BLOCKING]
    if blocking:
        return _end(result, REFUSED, started, reason=f"{'; '.join(blocking)} (setup installs nothing)")
    result.warnings += [f"{name}: {detail}" for level, name, detail in checked.items
                        if level in ("fail", "warn") and name not in MENDS]
    facts = parse(res.stdout)
    p = plan(s, facts)
    register = _boot_putback(checked.items, p, result.warnings)
    result.kept = p.kept
    if p.refused:
        return _end(result, REFUSED, started, reason=p.refused)
    if not facts.dir and not s.upload:  # else check's compose_file line says what is wrong with it; upload brings it
        result.warnings.append(f"{s.compose_file} is not in {s.dir} yet: put it there before the first deploy")
    if not p.done:
        return _end(result, READY, started)
    say("making: " + "; ".join(p.done))
    result.done = p.done
    applied = None
    if p.make_dir or p.upstream or p.site:
        command = site_shell.apply(s, p.make_dir, p.upstream, p.site, p.text, p.link)
        applied = remote.run(command, command.budget)
    if register and (applied is None or applied.ok or remote.dry_run):
        _register(remote, s, result)
    if remote.dry_run:
        return _end(result, DRY_RUN, started)
    if applied is None:  # only the put-back at boot was to be made
        return _end(result, SET_UP if result.done else READY, started)
    return _applied(result, applied, started)


def _boot_putback(items: list[tuple[str, str, str]], p: Plan, warnings: list[str]) -> bool:
    """From check's boot-putback line: whether setup registers it (adds it to the plan); one it
    cannot have is a warning (the next run puts the host back, as without it)."""
    detail = next((detail for _, name, detail in items if name == boot.CHECK), "")
    if detail.startswith(boot.NOT_AVAILABLE):
        warnings.append(f"{boot.CHECK}: {detail}")
    elif detail.startswith(boot.REGISTERED):
        p.kept.append(f"{boot.CHECK} {detail}")
    elif detail.startswith(boot.NOT_REGISTERED):
        p.done.append(BOOT_DONE)
        return True
    return False


def _register(remote: Remote, s: HostSettings, result: SetupResult) -> None:
    """Register the put-back at boot; never fatal: where it fails, a warning, and it is not done."""
    command = boot.register(s)
    res = remote.run(command, command.budget)
    if not remote.dry_run and not (res.ok and (boot.DONE in res.stdout or boot.KEPT in res.stdout)):
        result.done.remove(BOOT_DONE)
        result.warnings.append(f"{boot.CHECK}: {boot.NOT_REGISTERED}: {res.why()} (the next run puts the host back)")


def _applied(result: SetupResult, res: Result, started: float) -> SetupResult:
    result.warnings += [line[len(site_shell.WARN):] for line in res.stdout.splitlines()
                        if line.startswith(site_shell.WARN)]
    if res.ok:
        return _end(result, SET_UP, started)
    if res.exited in (2, 3):  # nothing was made, or what was made is removed again
        result.done = []
        return _end(result, REFUSED, started, reason=f"{res.why()} (nothing changed)")
    return _end(result, FAILED, started, reason=f"nginx -t passed, but the reload did not take: {res.why()}")


def _end(result: SetupResult, outcome, started: float, reason: str = "") -> SetupResult:
    result.outcome, result.reason, result.seconds = outcome, reason, time.monotonic() - started
    return result
