"""The pre-flight: run by every deploy before anything is stopped, and by `fab check` on its own."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable

from ..config import uploads
from ..config.schema import HostSettings
from ..errors import ConfigError, Refused
from ..shell import base, compose, probe
from .facts import find_live, other, read
from .remote import Remote, Result


@dataclass
class CheckResult:
    items: list[tuple[str, str, str]] = field(default_factory=list)  # (ok|warn|fail, name, detail)
    info: dict[str, str] = field(default_factory=dict)  # facts found on the way, e.g. cpus

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> list[str]:
        return [f"{name}: {detail}" for level, name, detail in self.items if level == "fail"]


def run_checks(remote: Remote, s: HostSettings, then: str = "", reuse: bool = False,
               lowered: Callable[[str], str] = lambda line: line,
               boot_putback: bool = False) -> tuple[CheckResult, Result]:
    """Run the checks (and `then`, a read such as the facts, in the same round trip); reuse: see
    probe.engine_checks (a deploy trusts a recent pass of the costliest ones); lowered: the line
    as a deploy sends it (trip.lowered); boot_putback: fab check's and fab setup's line on the
    put-back at boot (not a deploy's: it never registers it, so it would only repeat the warning)."""
    checks = probe.preflight(s, reuse, boot_putback)
    res = remote.read(lowered(f"{checks}; {then}" if then else checks), s.timeouts.command)
    checked = parse_checks(s, res)
    checked.items += settings_warnings(s)
    return checked, res


def settings_warnings(s: HostSettings) -> list[tuple[str, str, str]]:
    """What the hosts file allows but is most likely a mistake."""
    warnings = []
    both = [x for x in s.shared if x in s.front or x in s.background]
    if both:
        warnings.append(("warn", "shared", f"{', '.join(both)} listed in shared and also in front or background: it "
                         f"runs once in {compose.project(s, compose.SHARED)} and again in each colour (remove it from "
                         "one of the lists)"))
    builds = [i for i, line in enumerate(s.prepare) if "build" in line.split() and "docker" in line]
    if s.build.local and builds:
        warnings.append(("warn", "prepare", f"prepare[{builds[0]}] builds on the host although build.where is "
                         "\"local\" (the images are built off the host and shipped): remove it from prepare"))
    return warnings


def parse_checks(s: HostSettings, res: Result) -> CheckResult:
    result = CheckResult()
    for line in res.stdout.splitlines():
        if line.startswith(base.MARK):
            break  # what `then` printed
        level, _, rest = line.partition(" ")
        name, _, detail = rest.partition(" ")
        if level == "info":
            result.info[name] = detail
        elif level in ("ok", "warn", "fail"):
            result.items.append((level, name, _explain(s, name, detail) if level == "fail" else detail))
    if not any(name == "ssh" for _, name, _ in result.items):
        result.items.append(("fail", "check", f"the check did not run: {res.why()}"))
    return result


def _explain(s: HostSettings, name: str, detail: str) -> str:
    if name != "leftover":
        return detail
    p = shlex.quote(detail)  # a label of a container on the host: shown as a command to run, so quoted
    return (f"the app also runs as the plain compose project {detail!r}, in neither colour: to adopt it, "
            f"stop it (docker compose -p {p} stop), copy what its volumes hold into {s.app}-blue's "
            f"(volume names carry the project name), deploy, then remove it with docker compose -p {p} down")


def preflight(remote: Remote, s: HostSettings) -> CheckResult:
    """fab check: the checks, then whether the live colour can be told (record and nginx agree), and
    whether a staged front would fit beside it."""
    result, _ = run_checks(remote, s, boot_putback=True)
    if s.upload:  # in place of the line that says so (compose_file, or dir when there is none yet)
        at = next((i + 1 for i, item in enumerate(result.items) if item[1] in ("compose_file", "dir")), len(result.items))
        result.items.insert(at, upload_check(remote, s))
        result.items = [item for i, item in enumerate(result.items) if item[1] != "compose_file" or i == at]
    if result.ok:
        try:
            facts = read(remote, s, s.timeouts.command)
            live = find_live(s, facts)
            result.items.append(("ok", "live", f"{live or 'none'}; a deploy goes to {other(live) if live else 'blue'}"))
        except Refused as e:
            result.items.append(("fail", "live", str(e)))
            return result
        ids = [c.id for name, c in facts.services(s, live).items() if name in s.front and c.state == "running"] \
            if live else []
        if ids:
            result.items.append(staging_fits(s, live, remote.read(probe.front_memory(ids), s.timeouts.command)))
    return result


def upload_check(remote: Remote, s: HostSettings) -> tuple[str, str, str]:
    """upload: the local compose file, as the next deploy uploads it, through `docker compose config -q`
    on the host (its text on the command's standard input, never on a command line)."""
    try:
        file = uploads.read(uploads.compose_upload(s))
    except ConfigError as e:
        return "fail", "compose_file", str(e)
    res = remote.put(probe.check_upload(s), file.data, file.path, s.timeouts.command)
    if not res.ok:
        return "fail", "compose_file", f"{file.path} (upload): {res.why()}"
    return "ok", "compose_file", f"{file.path} (uploaded by each deploy, sha256 {file.short}): docker compose config passes"


SPARE = 128 * 2**20  # what a host should keep available once a second front runs (the memory check's floor)
UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2,
         "GiB": 1024**3, "TiB": 1024**4}


def staging_fits(s: HostSettings, live: str, res: Result) -> tuple[str, str, str]:
    """deploy --no-switch runs a second front beside the live colour until fab promote: about what
    the live front uses now (docker stats). A warning when that would leave less than SPARE."""
    used, _, available = res.stdout.partition(f"{base.MARK}available")
    figures = [_bytes(line.split("/")[0]) for line in used.splitlines() if "/" in line]
    kb = available.split()
    if not figures or None in figures or not sum(figures) or not kb or not kb[0].isdigit():  # 0B: not accounted
        return "warn", "staging", f"could not estimate the memory of a staged front: {res.why()}"
    need, free = sum(figures), int(kb[0]) * 1024
    said = (f"a staged front (deploy --no-switch) needs about {need / 2**20:.0f} MiB, what {live}'s front uses now; "
            f"{free / 2**20:.0f} MiB available")
    if free - need < SPARE:
        return "warn", "staging", (f"{said}: it may not fit; free some memory, or deploy without --no-switch, "
                                   f"which stops {live}'s background before the new front starts")
    return "ok", "staging", said


def _bytes(text: str) -> float | None:
    """docker stats' "12.5MiB" (or "980kB", "1.2GiB") in bytes; None if it is not such a figure."""
    text = text.strip()
    number = text.rstrip("BkKMGTi")
    unit = text[len(number):]
    try:
        return float(number) * UNITS[unit]
    except (ValueError, KeyError):
        return None
