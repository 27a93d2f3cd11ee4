"""The result of one host's action: the only thing that crosses from a host's worker back to the report.

HostResult holds what every action says; DeployResult (deploy and rollback), CleanupResult and
DrainResult and SetupResult add their own. result_for() picks the class for an action (the fleet's skipped and
unreachable rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .config.schema import Color
from .errors import Locked, Refused, Unreachable


class Outcome(StrEnum):
    """How one host's action ended. A StrEnum: printed, compared and written to JSON as its plain text."""

    DEPLOYED = "deployed"
    STAGED = "staged"  # deploy --no-switch: the new front runs, healthy, beside the live colour (fab promote)
    UNSTAGED = "unstaged"  # rollback of a staged colour: removed, the live colour untouched
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
    SET_UP = "set up"  # setup: the host was prepared for its first deploy
    READY = "already set up"  # setup: nothing was missing, nothing was changed

    @property
    def ok(self) -> bool:
        """The host ended as the user asked (or was only planned): not a reason for exit code 1."""
        return self in OK


OK = frozenset({Outcome.DEPLOYED, Outcome.STAGED, Outcome.UNSTAGED, Outcome.CLEANED, Outcome.NOTHING, Outcome.PLANNED, Outcome.DRY_RUN,
                Outcome.DRAINED, Outcome.NOTHING_TO_DRAIN, Outcome.SET_UP, Outcome.READY})

# the names the rest of the tool imports
DEPLOYED = Outcome.DEPLOYED
STAGED = Outcome.STAGED
UNSTAGED = Outcome.UNSTAGED
ROLLED_BACK = Outcome.ROLLED_BACK
FAILED = Outcome.FAILED
REFUSED = Outcome.REFUSED
UNREACHABLE = Outcome.UNREACHABLE
LOCKED = Outcome.LOCKED
INTERRUPTED = Outcome.INTERRUPTED
SKIPPED = Outcome.SKIPPED
DRY_RUN = Outcome.DRY_RUN
CLEANED = Outcome.CLEANED
NOTHING = Outcome.NOTHING
PLANNED = Outcome.PLANNED
DRAINED = Outcome.DRAINED
NOTHING_TO_DRAIN = Outcome.NOTHING_TO_DRAIN
SET_UP = Outcome.SET_UP
READY = Outcome.READY


@dataclass
class HostResult:
    """What every action says of one host. The fleet makes one of the action's own class (result_for)."""

    host: str
    action: str  # deploy, rollback, cleanup, drain
    outcome: Outcome | str = ""  # "" until the action decides
    from_color: Color | None = None  # deploy: the colour it left; cleanup: the colour removed; drain: drained
    to_color: Color | None = None  # the live colour after the action (deploy: the one it went to)
    step: str = ""  # the step it stopped at
    reason: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # worth knowing, not a failure
    plan: list[str] = field(default_factory=list)  # --dry-run: the commands, in order

    @property
    def ok(self) -> bool:
        return self.outcome in OK


@dataclass
class DeployResult(HostResult):
    """deploy, promote and rollback."""

    tries: int = 0  # health checks made
    version: str = ""  # what is live now
    failed_service: str = ""  # the service whose logs explain a failure
    log_tail: str = ""  # the failing service's last log lines
    logs_command: str = ""  # how to read all of them on the host
    left: list[str] = field(default_factory=list)  # what a person must still fix
    cap: str = ""  # the warm-up cap of the new background, or why there was none
    host_load: str = ""  # what the host went through: peak CPU, longest 100 % stretch, lowest memory
    shipped: dict[str, int] | None = None  # build.where = "local": image name -> bytes sent (0: it was there)


@dataclass
class CleanupResult(HostResult):
    version: str = ""  # what the live colour (kept) runs
    removes: list[str] = field(default_factory=list)  # the containers it removes
    cut: int | None = None  # open connections to the old colour that `down` cut; None: not counted


@dataclass
class DrainResult(HostResult):
    queued: dict[str, int] = field(default_factory=dict)  # queue -> messages that waited in it, e.g. {"celery": 3}


@dataclass
class SetupResult(HostResult):
    done: list[str] = field(default_factory=list)  # what setup made (or, in a dry run, would make)
    kept: list[str] = field(default_factory=list)  # what was there already, left as it was


RESULTS: dict[str, type[HostResult]] = {"deploy": DeployResult, "rollback": DeployResult, "promote": DeployResult,
                                        "cleanup": CleanupResult, "drain": DrainResult, "setup": SetupResult}


def result_for(action: str, host: str, **fields) -> HostResult:
    """A result of the action's own class (HostResult for an action without one)."""
    return RESULTS.get(action, HostResult)(host=host, action=action, **fields)


def internal_error(e: BaseException) -> str:
    """A bug met on one host, in one line: that host's row says it, the others carry on."""
    return f"internal error: {type(e).__name__}: {' '.join(str(e).split())} (please report it)"


def outcome_for(e: BaseException) -> tuple[Outcome, str]:
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
