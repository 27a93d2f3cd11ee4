"""Many hosts at once: one worker thread and one SSH connection per host; every outcome returned.

One host's failure is a row, never an abort of the others. Hosts go in batches (--batch N, all at
once by default, at most MAX_PARALLEL connections open); after a batch with --max-fail K hosts not
done, no new batch starts and the rest are `skipped`. Ctrl-C sets `interrupted`: each host still in
its sequence rolls back at its next step, no new host starts, and the run returns normally. SIGTERM
(a cancelled CI job, `timeout 300 fab deploy`) does the same while the hosts run; a second Ctrl-C or
SIGTERM changes nothing more: the hosts are still being put back."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from .config.schema import HostSettings
from .errors import Refused, Unreachable
from .host.remote import DryRunRemote, Remote, SshRemote
from .report import Progress
from .result import FAILED, SKIPPED, HostResult, internal_error, outcome_for, result_for

MAX_PARALLEL = 10  # SSH connections open at once: keeps a 50-host run sane
EXIT_CODES = {"Ctrl-C": 130, "SIGTERM": 143}  # 128 + the signal's number, as shells report it


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread while the hosts run: handled as Ctrl-C is."""


class Stop(threading.Event):
    """Set on the first Ctrl-C or SIGTERM; `cause` says which (shown in the table, sets the exit code)."""

    cause = "Ctrl-C"

    def stop(self, cause: str) -> bool:
        """Set it; True the first time."""
        if self.is_set():
            return False
        self.cause = cause
        self.set()
        return True

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.cause]


@contextmanager
def sigterm_as_interrupt():
    """While the hosts run, SIGTERM raises Terminated in the main thread (unless it was ignored when
    fab started, as a Unix program keeps an inherited SIG_IGN); the handler before is put back."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    before = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)

T = TypeVar("T")
Job = Callable[[Remote, HostSettings, Callable[[str], None]], HostResult]


@dataclass
class Fleet:
    progress: Progress
    base_config: object = None
    dry_run: bool = False
    batch: int = 0  # hosts per batch; 0: all (at most MAX_PARALLEL at a time)
    max_fail: int = 0  # stop starting batches once this many hosts ended not ok; 0: never
    interrupted: Stop = field(default_factory=Stop)
    connect: Callable[[HostSettings], Remote] | None = None

    def run(self, hosts: list[HostSettings], action: str, job: Job) -> list[HostResult]:
        """Run job on every host; results come back in the hosts' order."""
        with sigterm_as_interrupt():
            return self._run(hosts, action, job)

    def _run(self, hosts: list[HostSettings], action: str, job: Job) -> list[HostResult]:
        size = self.batch or len(hosts)
        results: dict[str, HostResult] = {}
        for start in range(0, len(hosts), size):
            failed = sum(1 for r in results.values() if not r.ok)
            if self.interrupted.is_set() or (self.max_fail and failed >= self.max_fail):
                break
            batch = hosts[start:start + size]
            results.update(self._run_batch(batch, action, job, offset=start))
        for s in hosts:
            if s.name not in results:
                why = "interrupted before it started" if self.interrupted.is_set() else \
                    f"not started: {self.max_fail} host(s) already failed (--max-fail)"
                results[s.name] = result_for(action, s.name, outcome=SKIPPED, reason=why)
        return [results[s.name] for s in hosts]

    def _run_batch(self, hosts: list[HostSettings], action: str, job: Job, offset: int) -> dict[str, HostResult]:
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(hosts)))) as pool:
            futures = {pool.submit(self._one, s, offset + i, action, job): s for i, s in enumerate(hosts)}
            self._wait(set(futures))
            return {futures[f].name: f.result() for f in futures}

    def _wait(self, pending: set[Future]) -> None:
        """Wait for every host; Ctrl-C or SIGTERM only asks them to roll back, and we keep waiting for that."""
        while pending:
            try:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt as e:
                if self.interrupted.stop("SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"):
                    self.progress.note(f"{self.interrupted.cause}: rolling back every host still in its sequence "
                                       "(wait for it)")

    def run_plain(self, hosts: list[HostSettings], fn: Callable[[Remote, HostSettings], T],
                  failed: Callable[[str, str], T]) -> list[T]:
        """A look at every host, in parallel: fn's value, or failed(host, one-line error)."""
        def one(s: HostSettings):
            try:
                return plain(s)
            except Exception as e:  # a bug: this host's row says so, the others carry on
                return failed(s.name, internal_error(e))

        def plain(s: HostSettings):
            try:
                remote = self.connect(s) if self.connect else SshRemote(s, self.base_config)
                if hasattr(remote, "open"):
                    remote.open()
            except Unreachable as e:
                return failed(s.name, outcome_for(e)[1])
            try:
                return fn(remote, s)
            except (Unreachable, Refused) as e:
                return failed(s.name, outcome_for(e)[1])
            finally:
                remote.close()

        with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(hosts)))) as pool:
            return list(pool.map(one, hosts))

    def _one(self, s: HostSettings, index: int, action: str, job: Job) -> HostResult:
        say = self.progress.for_host(s.name, index)
        try:
            return self._host(s, action, job, say)
        except Exception as e:  # a bug: this host's row says so, the others carry on
            reason = internal_error(e)  # not outcome_for: whatever a job let through is a bug of the job's
            say(f"failed: {reason}")
            return result_for(action, s.name, outcome=FAILED, reason=reason)

    def _host(self, s: HostSettings, action: str, job: Job, say: Callable[[str], None]) -> HostResult:
        if self.interrupted.is_set():
            return result_for(action, s.name, outcome=SKIPPED, reason="interrupted before it started")
        try:
            remote = self.connect(s) if self.connect else SshRemote(s, self.base_config)
            if self.dry_run:
                remote = DryRunRemote(remote)
            say(f"connecting to {s.ssh}")
            if hasattr(remote, "open"):
                remote.open()
        except Unreachable as e:
            outcome, reason = outcome_for(e)
            say(f"{outcome}: {reason}")
            return result_for(action, s.name, outcome=outcome, step="connect", reason=reason)
        try:
            try:
                result = job(remote, s, say)
            except Unreachable as e:  # lost mid-job where the job has no finer word for it (e.g. cleanup's down)
                outcome, reason = outcome_for(e)
                reason += "; check the host with fab status"
                say(f"{outcome}: {reason}")
                return result_for(action, s.name, outcome=outcome, reason=reason)
            if isinstance(remote, DryRunRemote):
                result.plan = [f"{'# reads: ' if kind == 'read' else ''}{line}" for kind, line in remote.plan]
            return result
        finally:
            remote.close()
