"""HostResult: the only thing that crosses from a host's worker back to the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Locked, Refused, Unreachable

DEPLOYED = "deployed"
ROLLED_BACK = "rolled back"  # a step failed and the host was put back: the old colour serves
FAILED = "failed"  # a step failed and the rollback did not fully succeed: a person must look
REFUSED = "refused"  # the host's state made the tool stop before changing anything
UNREACHABLE = "unreachable"  # no SSH connection, or it was lost
LOCKED = "locked"  # another run holds the host's lock: nothing was changed
INTERRUPTED = "interrupted"  # Ctrl-C: the host was put back (or left to its guard)
SKIPPED = "skipped"  # never started: an earlier batch failed too often
DRY_RUN = "dry run"  # nothing was changed: the plan was printed
CLEANED = "cleaned"
NOTHING = "nothing to clean"
PLANNED = "planned"  # cleanup: what would be removed, before the user said yes
DRAINED = "drained"  # drain: the old colour's queues were emptied by its workers
NOTHING_TO_DRAIN = "nothing to drain"


@dataclass
class HostResult:
    host: str
    action: str  # deploy, cleanup
    outcome: str = ""
    from_color: str | None = None
    to_color: str | None = None
    step: str = ""  # the step it stopped at
    reason: str = ""
    tries: int = 0  # health checks made
    seconds: float = 0.0
    version: str = ""  # what is live now
    failed_service: str = ""  # the service whose logs explain a failure
    log_tail: str = ""  # the failing service's last log lines
    logs_command: str = ""  # how to read all of them on the host
    left: list[str] = field(default_factory=list)  # what a person must still fix
    warnings: list[str] = field(default_factory=list)  # worth knowing, not a failure
    plan: list[str] = field(default_factory=list)  # --dry-run: the commands, in order
    cap: str = ""  # the warm-up cap of the new background, or why there was none
    host_load: str = ""  # what the host went through: peak CPU, longest 100 % stretch, lowest memory
    removes: list[str] = field(default_factory=list)  # cleanup: the containers it removes
    queued: str = ""  # drain: the messages that waited, e.g. "celery: 3"

    @property
    def ok(self) -> bool:
        return self.outcome in (DEPLOYED, CLEANED, NOTHING, PLANNED, DRY_RUN, DRAINED, NOTHING_TO_DRAIN)


def internal_error(e: BaseException) -> str:
    """A bug met on one host, in one line: that host's row says it, the others carry on."""
    return f"internal error: {type(e).__name__}: {' '.join(str(e).split())} (please report it)"


def outcome_for(e: BaseException) -> tuple[str, str]:
    """How an error ends one host's run, the same in every task: (outcome, reason).

    Another run's lock: LOCKED; the host's state: REFUSED; no connection (or a lost one): UNREACHABLE;
    anything else is a bug: FAILED, `internal error: ...`. A sequence adds what only it knows (the
    step, what is left on the host) to the reason."""
    if isinstance(e, Locked):
        return LOCKED, str(e)
    if isinstance(e, Refused):
        return REFUSED, str(e)
    if isinstance(e, Unreachable):
        return UNREACHABLE, str(e)
    return FAILED, internal_error(e)
