"""Many hosts at once: one worker thread and one SSH connection per host; every outcome returned.

One host's failure is a row, never an abort of the others."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .errors import Unreachable
from .remote import Remote, SshRemote
from .report import Progress
from .result import UNREACHABLE, HostResult
from .settings import HostSettings

MAX_PARALLEL = 10  # SSH connections open at once

Job = Callable[[Remote, HostSettings, Callable[[str], None]], HostResult]


def run_each(hosts: list[HostSettings], action: str, job: Job, progress: Progress,
             base_config=None, connect: Callable[..., Remote] | None = None) -> list[HostResult]:
    """Run job on every host in parallel; results come back in the hosts' order."""
    connect = connect or (lambda s: SshRemote(s, base_config))

    def one(index_and_host: tuple[int, HostSettings]) -> HostResult:
        index, s = index_and_host
        say = progress.for_host(s.name, index)
        try:
            remote = connect(s)
            say(f"connecting to {s.ssh}")
            if hasattr(remote, "open"):
                remote.open()
        except Unreachable as e:
            say(f"unreachable: {e}")
            return HostResult(host=s.name, action=action, outcome=UNREACHABLE, step="connect", reason=str(e))
        try:
            return job(remote, s, say)
        finally:
            remote.close()

    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(hosts)))) as pool:
        return list(pool.map(one, enumerate(hosts)))
