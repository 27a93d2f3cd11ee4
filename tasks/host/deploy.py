"""The blue-green sequence on one host. Read Deploy.run(), then Deploy.sequence() and Deploy.steps()
top to bottom: they are the whole deploy.

    lock -> check the host -> find the live colour -> ship the images built off the host (if so)
    -> write the new colour's secrets -> upload its own copy of the files (upload) -> prepare
    -> arm the guard -> start the shared services (if not running) -> stop the live colour's
    background -> create the new colour (front and background, one compose call) and start its
    front by container ID, then its health check -> after_front hooks
    -> go live: switch nginx -> after_switch hooks -> start the new background (by ID), then watch
    it settle -> count the tasks left in the old colour's broker
    -> record -> disarm the guard -> unlock
    each step that changes the host first writes its inverse to the undo journal on the host
    (tasks/shell/journal.py); any failure from "stop" on (Ctrl-C included): roll back, the journal
    newest first (stop the new background, switch back, restart the old background, stop the new
    colour), keeping the failed colour's containers for their logs. The guard runs the same journal.

The other sequences change only their steps:
- Stage (deploy --no-switch): the new front, its health check and after_front, beside the live
  colour, whose background keeps running and which keeps the traffic; recorded as staged.
- Promote: the rest, for the staged colour: its health check again, stop the old background, go live.
- Rollback: towards the previous colour, without secrets or prepare, starting that colour's
  containers as they are instead of recreating them.
- Unstage: a rollback while a colour is staged removes that colour, nothing else (chosen once the
  host's facts are read, before the sequence starts).

Each declares the steps it runs (steps_run); Deploy.sequence() and steps() keep their order.
"""

from __future__ import annotations

import shlex
import threading
import time
from typing import Callable

from ..build import Builds
from ..config.schema import Color, HostSettings
from ..config.secrets import SecretEnv
from ..config.uploads import Upload
from ..errors import Interrupted, Refused, StepFailed
from ..life import watching
from ..result import DEPLOYED, DRY_RUN, FAILED, INTERRUPTED, ROLLED_BACK, STAGED, UNSTAGED, DeployResult
from ..shell import base, compose, cpu, guard, health, hooks, journal, nginx, probe, record, state
from ..shell.record import Record
from ..shell.base import MARK, Command
from ..shell.broker import count_queued
from . import broker, lock, secrets, ship
from .check import run_checks
from .facts import Facts, find_live, killed, other, read, version
from .facts import from_result as facts_from
from .remote import TIMED_OUT, Remote, Result
from .trip import Trip, lowered

Say = Callable[[str], None]
GUARD_ACTED = ("the guard put the host back before fab could confirm: fab was not heard from in time (a laptop "
               "asleep, a link down); the old colour serves: see fab status")


def user_failure(res: Result) -> str:
    """How a user's command (prepare, a hook) failed, in the tool's words: its exit code, or the
    timeout or the guard that stopped it. Never its command line or its output (see say_output)."""
    if res.exited == TIMED_OUT and res.stderr.startswith("timed out"):  # tasks/host/remote.py's own words
        return res.stderr.strip()
    own = [line[len(base.WHY):].strip() for line in res.stdout.splitlines() if line.startswith(base.WHY)]
    if res.exited == guard.GONE_EXIT and guard.GONE_REASON in own:  # the heartbeat in front of it stopped it
        return guard.GONE_REASON
    return f"exit {res.exited}"


class Deploy:
    """One host's deploy. Each step raises StepFailed; run() decides what that means."""

    task = "deploy"
    done = DEPLOYED  # the outcome once every step went through
    # the steps this sequence runs, of those sequence() and steps() name (Stage, Promote, Rollback run fewer)
    steps_run: frozenset[str] = frozenset({"prepare", "start shared", "stop old background", "start new front", "go live"})

    def __init__(self, remote: Remote, s: HostSettings, say: Say = lambda msg: None, message: str = "",
                 interrupted: threading.Event | None = None, env: SecretEnv | None = None,
                 builds: Builds | None = None, uploads: tuple[Upload, ...] = ()):
        self.remote, self.s, self.say, self.message = remote, s, say, message
        self.env = env  # the secrets to write for the new colour (tasks/config/secrets.py), if any
        self.uploads = uploads  # the files to copy into the new colour's own folder (tasks/config/uploads.py)
        self.uploaded: dict[str, str] = {}  # name -> short sha256 of what went there, for the history
        self.builds = builds  # build.where = "local": the images built before any host's sequence
        self.interrupted = interrupted or threading.Event()
        self.timeouts = s.timeouts
        self.token = lock.new_token()
        self.trip = Trip(remote, s, self.token, say)  # every command after the lock goes through it
        self.result = DeployResult(host=s.name, action=self.task)
        self.facts = Facts()
        self.live: str | None = None
        self.new = Color.BLUE
        self.step = "connect"
        self.old_upstream: str | None = None
        self.old_record = Record()
        self.journal: list[journal.Entry] = []  # what has been changed so far: the rollback undoes exactly that
        self.stopped: list[str] = []  # the IDs of the old background's containers this run stopped
        self.stopped_running: tuple[str, ...] = ()  # ... the services of those that ran
        self.killed_read = False  # their exit codes were read (killed after stop_timeout: a warning)
        self.created = compose.Created()  # the new colour's containers, as its front's round trip created them
        self.new_started = False
        self.crashed = False  # an unexpected error (a bug): the guard, if armed, is left to act
        self.acted_history = ""  # the history line fab writes instead of its own when the guard acted
        self.host_cpus = 1.0
        self.source_version = ""  # build.where = "local": git describe of the build's source

    def run(self) -> DeployResult:
        started = time.monotonic()
        lock.with_lock(self.result, self.locked, self.take_lock, self.finish, step=lambda: self.step,
                       unreachable=self.left_to, say=self.say)
        self.note_guard_acted()
        if self.remote.dry_run and self.result.outcome == self.done:
            self.result.outcome = DRY_RUN
        self.result.seconds = time.monotonic() - started
        return self.result

    def locked(self, taken: Result) -> None:
        """What runs while the lock is held (finish() releases it)."""
        self.result.warnings += [f"{color}'s warm-up cap was still on (its lift had died): lifted it"
                                 for color in cpu.lifted(taken.stdout)]
        try:
            self.check_host()
            self.__class__ = self.sequence_for(self.facts)  # decided once, before the sequence starts
            self.find_live_color()
            self.sequence()
        except Exception:  # a bug of the tool's: the guard, still armed, puts the host back
            self.crashed = True
            raise

    def sequence_for(self, facts: Facts) -> type["Deploy"]:
        """The sequence to run on this host, as its facts say (a rollback of a staged colour: Unstage)."""
        return type(self)

    def runs(self, step: str) -> bool:
        return step in self.steps_run

    def left_to(self, step: str) -> str:
        """Said of a host whose link was lost while this run held its lock."""
        return (f"; the host is left to {'its guard' if self.trip.armed else 'itself'} mid-step: check it with "
                "fab status before deploying again")

    def sequence(self) -> None:
        """What follows the look at the host: from "stop" on, a failed step rolls the host back."""
        self.ship_images()
        self.write_secrets()
        self.upload_files()
        if self.runs("prepare"):
            self.run_prepare()
        self.arm_guard()
        settled: Facts | None = None  # the host once the new background settled
        try:
            settled = self.steps()
            self.result.outcome = self.done
            self.say(self.done_message())
        except StepFailed as failure:
            self.trip.disarm()
            self.roll_back(failure)
        self.record_deploy(settled)

    def steps(self) -> Facts | None:
        """The deploy proper; returns the host as read once the new background settled."""
        if self.runs("start shared"):
            self.start_shared()
        if self.runs("check staged"):
            self.check_staged()  # promote: the staged front's health check again
        if self.runs("stop old background"):
            self.stop_old_background()  # first: the new front gets the CPU the old workers used
        if self.runs("start new front"):
            self.start_new_front()  # then poll its health check (one round trip)
            self.run_hooks("after_front")
        if self.runs("go live"):
            return self.go_live()
        self.tell_staged()  # deploy --no-switch: how to try it, what comes next
        return None

    def go_live(self) -> Facts | None:
        """Traffic to the new colour, then its background (the part fab promote adds to a staged colour)."""
        self.switch_upstream()
        self.run_hooks("after_switch", warn_only=True)
        settled = self.start_new_background()  # then watch it settle, and read the host
        self.count_old_queue(settled)
        return settled

    def done_message(self) -> str:
        return f"{'planned' if self.remote.dry_run else 'deployed'}: {self.new} serves"

    def tell_staged(self) -> None:
        """A staged colour (deploy --no-switch), in the result's reason: how to try it, what comes next."""
        port = self.s.port(self.new)
        self.result.reason = (f"{self.new} runs on port {port} beside {self.live or 'no live colour'}: try it on the "
                              f"host (curl http://127.0.0.1:{port}{self.s.health.path}), then fab promote "
                              f"--host {self.s.name}, or fab rollback --host {self.s.name} to remove it")

    # --- the steps, in order ---------------------------------------------------------------

    def take_lock(self) -> Result:
        """The lock first; the host's CPU and memory are sampled from then on (same round trip)."""
        self.at("lock")
        return lock.take(self.remote, self.s, self.task, self.token, self.message, self.timeouts.command,
                         and_then=lowered(f"{cpu.start_sampler(self.s)}; {cpu.lift_stuck(self.s)}"), say=self.say_warning)

    def say_warning(self, line: str) -> None:
        self.say(line)
        self.result.warnings.append(line)

    def check_host(self) -> None:
        """The pre-flight of `fab check` (sudo, docker, compose file, nginx, ports, disk, memory),
        and the facts the sequence decides on, in one round trip."""
        self.at("check")
        checked, res = run_checks(self.remote, self.s, then=probe.facts(self.s, reuse_listing=True), reuse=True,
                                  lowered=lowered)
        self.host_cpus = float(checked.info.get("cpus") or 1)
        for level, name, detail in checked.items:
            if level == "warn":
                self.result.warnings.append(f"{name}: {detail}")
        if not checked.ok:
            raise Refused("pre-flight: " + "; ".join(checked.problems) + " (fab check shows every check)")
        self.facts = facts_from(res)

    def find_live_color(self) -> None:
        self.at("live colour")
        if not self.facts.compose_file and not self.s.upload:  # with upload, each deploy brings its own
            raise Refused(f"{self.s.dir}/{self.s.compose_file} not found: put the app there, or set dir / "
                          "compose_file in the hosts file")
        if self.s.switch.mode == "nginx" and self.facts.upstream_unreadable:
            raise Refused(f"{self.s.switch.upstream_file} exists but cannot be read, not even through sudo -n: "
                          "the rollback could not put it back; allow the SSH user passwordless sudo (fab check)")
        self.live = find_live(self.s, self.facts)
        self.new = self.choose_target()
        self.old_upstream = self.facts.upstream
        self.old_record = self.facts.record or Record()
        self.result.from_color, self.result.to_color = self.live, self.new
        if (self.facts.last or {}).get("action") == "guard":
            self.say(f"note: the guard put this host back at {self.facts.last.get('time')} "
                     f"({self.facts.last.get('reason')})")
        self.say(f"live colour: {self.live or 'none'}; {self.intent()}")

    def intent(self) -> str:
        staged = self.old_record.staged
        replaced = f" (replacing the staged {staged})" if staged == self.new and self.task == "deploy" else ""
        return f"{self.task} to {self.new}{replaced}"

    def choose_target(self) -> Color:
        return other(self.live) if self.live else Color.BLUE

    def write_secrets(self) -> None:
        """The new colour's secrets file, dir/.fab-bluegreen/<app>.<colour>.env (0600, atomically), its
        text on the channel's standard input: never on a command line, never shown."""
        if self.env is None:
            return
        self.at("secrets")
        what = f"secrets: {self.env.describe()}"
        self.say(f"{what} -> {self.s.dir}/{state.env_path(self.s, self.new)}")
        res = self.remote.put(state.write_env(self.s, self.new), self.env.text, what, self.timeouts.command)
        if not res.ok:
            raise StepFailed(self.step, f"could not write {self.s.dir}/{state.env_path(self.s, self.new)}: {res.why()}")

    def upload_files(self) -> None:
        """upload: the files, read once on the workstation, into the new colour's own folder,
        dir/.fab-bluegreen/<app>.<colour>/ (each atomically, on the channel's standard input: never on a
        command line); then `docker compose config -q` of that copy, which the colour runs from."""
        if not self.uploads:
            return
        self.at("upload")
        folder = f"{self.s.dir}/{state.copy_dir(self.s, self.new)}"
        self.say(f"upload: {', '.join(u.name for u in self.uploads)} -> {folder}/")
        for u in self.uploads:
            res = self.remote.put(state.write_copy(self.s, self.new, u.name), u.data, f"{u.path} ({len(u.data)} bytes)",
                                  self.timeouts.command)
            if not res.ok:
                raise StepFailed(self.step, f"could not write {folder}/{u.name}: {res.why()}")
            self.uploaded[u.name] = u.short
        checked = self.send(compose.config_check(self.s, self.new))
        if not checked.ok:
            raise StepFailed(self.step, f"{folder}/{compose.own_name(self.s)}: docker compose config failed: "
                                        f"{checked.why()}")

    def ship_images(self) -> None:
        """build.where = "local": of the images built off the host, only the layers it lacks are
        sent, then tagged for the new colour, whose `up` then neither builds nor pulls them."""
        if self.builds is None or not self.s.build.local:
            return
        self.at("ship")
        shipped = ship.ship(self.remote, self.s, self.builds, self.new, self.say)
        self.result.shipped, self.source_version = shipped.bytes, shipped.version

    def run_prepare(self) -> None:
        for i, line in enumerate(self.s.prepare):
            self.at("prepare")
            self.say(f"prepare: {line}")
            res = self.send_watched(hooks.prepare(self.s, self.new, line), "prepare")
            if not res.ok:
                self.say_output(res)
                raise StepFailed(self.step, f"prepare[{i}] failed: {user_failure(res)}")

    def arm_guard(self) -> None:
        """From here on, a dead link or a dead tool leaves the host to the guard, which puts it back."""
        self.at("guard")
        grace = guard.grace(self.s)
        self.trip.arm(guard.arm(self.s, self.token, grace))  # with the next command
        self.say(f"guard armed: puts the host back if fab is not heard from within {grace:g} s")

    def undo_first(self, step: str, words: str, command: Command | str, failed: str) -> None:
        """The inverse of what the next command changes, into the journal in front of it (its undo
        even if it is cut off halfway)."""
        entry = journal.Entry(words, command, failed, step)
        self.journal.append(entry)
        self.trip.note(journal.append(self.s, len(self.journal), entry))

    def start_shared(self) -> None:
        """Services of neither colour (a broker both use): started when they do not run; never
        stopped, recreated or removed by the tool."""
        if not self.s.shared:
            return
        self.at("start shared")
        self.say(f"shared {', '.join(self.s.shared)} ({compose.project(self.s, compose.SHARED)}): starting if not running")
        self.check(compose.up_shared(self.s, self.new), "could not start the shared services")

    def check_staged(self) -> None:
        """The staged front's health check again: it may have changed since it was staged."""
        self.at("health check")
        self.say(f"health check of the staged {self.new} (port {self.s.port(self.new)})")
        self.undo_new_colour()  # the staged front: a failed promote stops it, as a failed deploy does
        self.healthy(self.send(health.wait_healthy(self.s, self.new)))

    def stop_old_background(self) -> None:
        """Gracefully: each service gets stop_timeout seconds (Celery's warm shutdown finishes
        the tasks it runs); one killed at the end of it is a warning."""
        if not self.live or not self.s.background:
            return
        self.at("stop old background")
        self.say(f"stopping {self.live} {', '.join(self.s.background)} (up to {self.s.stop_timeout:g} s each)")
        self.stopped = [c.id for c in self.facts.containers if c.project == compose.project(self.s, self.live)
                        and c.service in self.s.background]
        self.stopped_running = tuple(x for x in self.s.background if self.facts.running(self.s, self.live, x))
        background = " ".join(self.s.background)
        self.undo_first(self.step, f"start {compose.project(self.s, self.live)} {background} again, unless "
                                   f"{compose.project(self.s, self.new)}'s run",
                        compose.start_unless_running(self.s, self.live, self.s.background, self.new),
                        f"{self.live}'s {', '.join(self.s.background)} did not start again")
        self.check(compose.stop_ids(self.s, self.stopped), f"could not stop {self.live}'s background services")

    def note_killed(self, stdout: str) -> None:
        """The old background's exit codes, as a later listing read them: one killed at the end of
        its stop_timeout is a warning (said once)."""
        if self.stopped and not self.killed_read and probe.has(stdout, probe.CONTAINERS):
            self.killed_read = True
            self.result.warnings += killed(self.s, self.live, self.stopped_running, stdout)

    def start_new_front(self) -> None:
        """Start the new front, then poll its health check until 2xx/3xx: one round trip."""
        self.at("start new front")
        self.say(f"starting {self.new} {', '.join(self.s.front)} (port {self.s.port(self.new)}), then its health check")
        self.undo_new_colour()
        res = self.send(base.in_order([("front", self.front_command())], health.wait_healthy(self.s, self.new)))
        self.created = compose.parse_created(res.stdout)
        if not self.reached(res, base.started("front")):
            raise StepFailed(self.step, f"could not start {self.new}'s front services: {res.why()}", service=self.s.web)
        self.healthy(res)

    def undo_new_colour(self, services: tuple[str, ...] = ()) -> None:
        """The new colour (only these services, if named) is stopped again, and kept for its logs."""
        self.new_started = True
        what = " ".join((compose.project(self.s, self.new), *services))
        self.undo_first("start new front", f"stop {what} (kept for its logs)", compose.stop(self.s, self.new, services),
                        f"{what} could not be stopped")

    def healthy(self, res: Result) -> None:
        """The health check's tries (health.wait_healthy) in res: 2xx/3xx at last, or StepFailed."""
        self.step = "health check"
        codes = health.tries(res.stdout)
        self.result.tries = len(codes)
        if not res.ok:
            code = codes[-1] if codes else "?"
            answer = "no answer" if code in ("000", "?") else f"HTTP {code}"
            reason = res.why() if res.exited == TIMED_OUT or not codes else \
                f"{health.health_url(self.s, self.new)} gave {answer} after {len(codes)} tries"
            raise StepFailed(self.step, reason, service=self.s.web)
        self.say(f"healthy after {len(codes)} tries")

    def front_command(self) -> Command:
        """A deploy recreates: whatever the colour ran before is the old version. One compose call
        creates the whole colour (front and background); the front starts by ID, the background
        after the switch (start_new_background)."""
        services = (*self.s.front, *self.s.background)
        return compose.create_then_start(self.s, self.new, services, self.s.front)

    def start_command(self, services: tuple[str, ...]) -> Command:
        """The background's start: by ID when the front's round trip created its containers, else
        (fab promote) recreated as the front was."""
        if self.created.has(services):
            return compose.start_ids(self.s, self.new, services, self.created)
        return compose.up(self.s, self.new, services)

    def run_hooks(self, name: str, warn_only: bool = False) -> None:
        for i, line in enumerate(getattr(self.s.hooks, name)):
            self.at(f"{name} hook")
            self.say(f"{name}: {line}")
            res = self.send_watched(hooks.hook(self.s, self.new, self.live, line), name)
            self.say_output(res)
            if not res.ok and warn_only:
                self.result.warnings.append(f"{name}[{i}] failed: {user_failure(res)}")
            elif not res.ok:
                raise StepFailed(f"{name} hook", f"{name}[{i}] failed: {user_failure(res)}")

    def say_output(self, res: Result, lines: int = 20) -> None:
        """The last lines of a user's command's output: in the progress only (never in the table
        or the history: they may hold what the command was given, a password in a URL)."""
        for out in (res.stdout + res.stderr).strip().splitlines()[-lines:]:
            self.say(f"  {out}")

    def switch_upstream(self) -> None:
        mode = self.s.switch.mode
        if mode == "none":
            return
        self.at("switch")
        self.say(f"switching {mode} to {self.new} (port {self.s.port(self.new)})")
        back = self.switch_back_command()
        self.undo_first(self.step, f"switch back to {self.live or 'the upstream before'} ({mode}); put the record back",
                        Command(f"{back} && {state.write_record(self.s, self.old_record.dump())}" if back else
                                state.write_record(self.s, self.old_record.dump()), nginx.switching(self.s)),
                        f"traffic may still go to {self.new}")
        if mode == "command":
            switch = nginx.switch_command(self.s, self.new)
        else:
            switch = nginx.switch_nginx(self.s, nginx.upstream_text(self.s, self.s.port(self.new)), self.old_upstream)
        rec = (self.facts.record or Record()).with_live(self.s.app, self.new, self.live)
        # switch (nginx serves the new upstream), record the new live colour, verify: one round trip
        self.check(Command(f"{switch} && {{ {state.write_record(self.s, rec.dump())} || {{ "
                           f"{base.why('could not write the record')}; exit 6; }}; }} && {{ {nginx.verify(self.s)}; }}",
                           nginx.switching(self.s)), "the switch failed", service=self.s.web)
        self.facts.record = rec

    def start_new_background(self) -> Facts | None:
        """Start the new background (capped ones under the warm-up cap), then watch it for settle
        seconds, then read the host's facts (and the old colour's queues): one round trip. Returns
        those facts, which the record and the queue count use."""
        if not self.s.background:
            return None
        self.at("start new background")
        capped = tuple(x for x in self.s.background if x in self.s.capped)
        plain = tuple(x for x in self.s.background if x not in capped)
        self.say(f"starting {self.new} {', '.join(self.s.background)}, then checking that they stay up for "
                 f"{self.s.settle:g} s")
        self.undo_first(self.step, f"remove a pending lift of the warm-up cap; stop {compose.project(self.s, self.new)} "
                                   f"{' '.join(self.s.background)}",
                        Command(f"{cpu.cancel_lift(self.s, self.new)}; {compose.stop(self.s, self.new, self.s.background)}",
                                compose.stopping(self.s)), f"{self.new}'s {', '.join(self.s.background)} could not be stopped")
        cap = cpu.default_cap(self.s, self.host_cpus)
        starts = [(capped[0], self.capped_start_command(capped, cap))] if capped else []
        starts += [(plain[0], self.start_command(plain))] if plain else []
        reads = probe.facts(self.s, reuse_listing=True)  # as the settle check last listed them
        if self.will_count_old_queue():
            reads += f"; echo {MARK}queued; {count_queued(self.s, self.live)}"
        res = self.send(base.in_order(starts, health.settled_then(self.s, self.new, self.s.background, reads,
                                                                  self.known_ids())))
        self.note_killed(res.stdout)
        for service, _ in starts:
            if not self.reached(res, base.started(service)):
                raise StepFailed(self.step, f"could not start {self.new}'s background services: {res.why()}",
                                 service=service)
        if capped:
            self.note_cap(capped, cap, res.stdout)
        self.step = "settle"
        if not res.ok:
            out = res.stdout.split(base.started(starts[-1][0]) + "\n", 1)[-1].strip()
            what = out.splitlines()[0] if out and not out.startswith(MARK) else res.why()
            raise StepFailed("settle", f"{what}, within settle ({self.s.settle:g} s)", service=what.split()[0])
        return facts_from(res) if f"{MARK}containers" in res.stdout else None

    def note_cap(self, services: tuple[str, ...], cap: float, stdout: str) -> None:
        why = cpu.no_cap(stdout)
        if why is not None:
            self.result.cap = f"no cap ({why if len(why) < 120 else why[:117] + '...'})"
            self.say(f"started without the warm-up cap: {self.result.cap}")
        else:
            self.result.cap = f"{cap:g} CPU for {self.s.warmup.seconds:g} s"
            self.say(f"{', '.join(services)} capped at {cap:g} CPU together for {self.s.warmup.seconds:g} s")

    def capped_start_command(self, services: tuple[str, ...], cap: float) -> str:
        ids = self.created.ids(services) if self.created.has(services) and not self.created.waits else None
        return cpu.start_capped(self.s, self.new, services, cap, self.s.warmup.seconds, ids)

    def known_ids(self) -> list[str] | None:
        """Every container this run knows of: the new colour's, as its front's round trip created
        them, and the others the pre-flight listed (None when the front's round trip listed none)."""
        if not self.created.order:
            return None
        new = compose.project(self.s, self.new)
        return [cid for _, cid in self.created.order] + [c.id for c in self.facts.containers if c.project != new]

    def count_old_queue(self, settled: Facts | None) -> None:
        """With a broker per colour: tasks the old web queued after the old worker stopped wait in
        the old broker. Said in the table; cleanup refuses until `fab drain` has run them."""
        if not self.will_count_old_queue():
            return
        self.step = "count old queue"  # not at(): a Ctrl-C now must not undo a finished deploy
        counted = settled.queued if settled else None  # read after the settle check
        queued = broker.parse(self.s, self.live, counted) if counted is not None else \
            broker.count(self.remote, self.s, self.live, self.timeouts.command)
        if queued.problem:
            self.result.warnings.append(queued.problem)
            return
        self.result.warnings += broker.warnings(self.s, self.live, queued)
        if waiting := broker.waiting(self.s, self.live, queued):
            self.result.warnings.append(f"{waiting}; fab cleanup refuses until then")
            self.say(waiting)

    def will_count_old_queue(self) -> bool:
        return bool(self.live) and broker.counted(self.s) and not self.remote.dry_run

    def record_deploy(self, settled: Facts | None) -> None:
        """Write what each colour runs now and one history line (sent by finish()); report the live version."""
        facts = settled if self.result.outcome == DEPLOYED and settled else self.read_facts()
        live = self.new if self.result.outcome == DEPLOYED else self.live
        rec = facts.record
        if self.result.outcome == self.done:
            rec = self.recorded_colors(rec or Record(), facts)
            self.trip.at_close(state.write_record(self.s, rec.dump()), "the record was not updated")
            facts.record = rec
        self.result.version = version(self.s, facts, live) if live else "-"
        fields = {"step": self.result.step, "service": self.result.failed_service, "message": self.message,
                  "versions": {c: version(self.s, facts, c) for c in ("blue", "green")},
                  **({"shipped": self.result.shipped} if self.result.shipped is not None else {}),
                  **({"uploaded": self.uploaded} if self.uploaded else {})}
        line = record.history_of(self.result, **fields)
        self.trip.at_close(state.append_history(self.s, line), "the history line was not written")
        acted = record.history_of(self.result, **fields, result=FAILED, reason=GUARD_ACTED)
        self.acted_history = state.append_history(self.s, acted)

    def recorded_colors(self, rec: Record, facts: Facts) -> Record:
        return rec.with_color(self.new, facts.images(self.s, self.new), facts.git, facts.container_ids(self.s, self.new),
                              self.source_version, self.uploaded)

    # --- rollback ----------------------------------------------------------------------------

    def roll_back(self, failure: StepFailed) -> None:
        """Put the host back: nginx to the old colour, the new colour stopped, the old background up."""
        self.result.step, self.result.reason = failure.step, failure.reason
        self.result.failed_service = failure.service or ""
        self.say(f"FAILED at {failure.step}: {failure.reason}; rolling back")
        self.result.log_tail = self.log_tail(failure.service)
        left = []
        for entry in reversed(self.journal):  # newest first, as the guard runs them
            command = entry.command
            if entry.step == "stop old background" and not self.killed_read:  # their exit codes, before a start
                command = Command(f"{compose.exit_codes(self.stopped)}; {command}", base.budget_of(command, 0))
            res = self.send(command)
            if entry.step == "stop old background":
                self.note_killed(res.stdout)
            if not res.ok:
                left.append(f"{entry.failed} ({res.why()})")
            elif entry.step == "switch":
                self.facts.record = self.old_record
        self.result.left = left
        interrupted = isinstance(failure, Interrupted) or self.interrupted.is_set()
        self.result.outcome = FAILED if left else INTERRUPTED if interrupted else ROLLED_BACK
        self.note_guard_acted()  # before the history line is written
        self.say(f"rolled back: {self.live or 'nothing'} serves" if not left else f"rollback incomplete: {left}")
        self.run_hooks_after_failure()

    def run_hooks_after_failure(self) -> None:
        try:
            self.run_hooks("on_failure", warn_only=True)
        except Interrupted:
            pass

    def switch_back_command(self) -> Command | str:
        """Traffic back to where it went before this run (the file as it was; if nginx rejected
        that, the new one stays in place rather than none at all)."""
        if self.s.switch.mode == "command" and self.live:
            return nginx.switch_command(self.s, self.live)
        if self.s.switch.mode == "nginx" and self.old_upstream is not None:
            new = nginx.upstream_text(self.s, self.s.port(self.new))
            return nginx.switch_nginx(self.s, self.old_upstream, new, unless_workers=self.facts.nginx_workers)
        return ""

    def log_tail(self, service: str | None) -> str:
        if not service or not self.new_started:
            return ""
        self.result.logs_command = f"ssh {self.s.ssh} {shlex.quote(compose.logs(self.s, self.new, service, 200))}"
        logs = compose.logs(self.s, self.new, service)
        res = self.remote.read(logs, logs.budget)
        return res.stdout.strip() or res.stderr.strip()

    # --- helpers -----------------------------------------------------------------------------

    def finish(self) -> None:
        """One round trip at the end: the record and history, disarm, unlock, the host's samples."""
        if self.crashed and self.trip.armed:  # leave the host, and its lock, to the guard
            self.trip.abandon()
            self.remote.run(cpu.stop_sampler(self.s), self.timeouts.command)
            return
        res, failed = self.trip.close(lock.release_command(self.s, self.token), otherwise=self.acted_history,
                                      then=cpu.stop_sampler(self.s))
        if res is None:
            return  # the guard frees the lock, or fab unlock does
        self.result.left += failed
        load = cpu.parse_samples(res.stdout)
        self.result.host_load = load.describe() if load else ""

    def read_facts(self) -> Facts:
        return read(self.remote, self.s, self.timeouts.command)

    def send(self, command: str, on_line: Callable[[str], None] | None = None, own: bool = True) -> Result:
        return self.trip.send(command, on_line=on_line, own=own)

    def send_watched(self, command: str, label: str) -> Result:
        """A user's command (prepare, a hook): while it runs long, its time and last line are shown.
        Not at the tool's own lowest priority (Trip.send)."""
        with watching(self.say, label) as seen:
            return self.send(command, on_line=seen, own=False)

    def note_guard_acted(self) -> None:
        """Whatever fab did, a host its guard put back is `failed`, with that reason (once)."""
        if self.trip.guard_acted and not self.result.reason.startswith(GUARD_ACTED):
            self.result.outcome, self.result.version = FAILED, ""
            self.result.reason = "; ".join(filter(None, [GUARD_ACTED, self.result.reason]))

    def check(self, command: str, what: str, service: str | None = None) -> Result:
        res = self.send(command)
        if not res.ok:
            raise StepFailed(self.step, f"{what}: {res.why()}", service=service)
        return res

    def reached(self, res: Result, marker: str) -> bool:
        """The part of a round trip in front of `echo marker` succeeded (a dry run assumes so)."""
        return self.remote.dry_run or base.reached(res.stdout, marker)

    def at(self, step: str) -> None:
        self.step = step
        if self.interrupted.is_set():
            raise Interrupted(step, getattr(self.interrupted, "cause", "Ctrl-C"))


class Stage(Deploy):
    """deploy --no-switch: the new colour's front started, health-checked and through after_front,
    beside the live colour, which keeps the traffic and its background; recorded as staged, for
    fab promote (or fab rollback, which removes it). Its failure stops the new colour, nothing else."""

    done = STAGED
    steps_run = frozenset({"prepare", "start shared", "start new front"})

    def done_message(self) -> str:
        return (f"{'planned' if self.remote.dry_run else 'staged'}: {self.new} on port {self.s.port(self.new)}; "
                f"{self.live or 'no colour'} still serves")

    def recorded_colors(self, rec: Record, facts: Facts) -> Record:
        return super().recorded_colors(rec, facts).with_staged(self.new)


class Promote(Deploy):
    """fab promote: the rest of a deploy for the staged colour, whose front already runs: its health
    check again, stop the old background, switch, start the new background, settle, record. A
    failure rolls back as a deploy's does: the old colour serves, the staged colour is stopped."""

    task = "promote"
    steps_run = frozenset({"check staged", "stop old background", "go live"})  # prepare ran when it was staged

    def choose_target(self) -> Color:
        staged = (self.facts.record or Record()).staged
        if staged is None:
            raise Refused(f"no colour is staged here: stage one with fab deploy --no-switch --host {self.s.name}")
        if not self.facts.running(self.s, staged, self.s.web):
            raise Refused(f"the staged {staged}'s {self.s.web} is not running (a failed promote stopped it, or "
                          f"someone did): stage it again with fab deploy --no-switch, or remove it with fab rollback")
        return staged

    def write_secrets(self) -> None:
        """Written when the colour was staged (its background gets the same): only masked here."""
        secrets.hide_written(self.remote, self.s, self.new)

    def upload_files(self) -> None:
        """The staged colour runs from the copy uploaded when it was staged: its hashes, for the
        record and the history."""
        self.uploaded = self.old_record.uploaded(self.new)



class Rollback(Deploy):
    """Back to the colour that was live before the current one, if its containers are still the
    ones that served then (not recreated by a later failed deploy). While a colour is staged, a
    rollback removes that colour instead (Unstage), and nothing else changes."""

    task = "rollback"
    steps_run = frozenset({"start shared", "stop old background", "start new front", "go live"})  # no prepare: a
    # rollback runs what is already there

    def sequence_for(self, facts: Facts) -> type[Deploy]:
        return Unstage if (facts.record or Record()).staged is not None else type(self)

    def choose_target(self) -> Color:
        rec = self.facts.record or Record()
        previous = rec.previous
        if not self.live or previous is None or previous == self.live:
            raise Refused(f"there is no previous colour to go back to (live: {self.live or 'none'}, "
                          f"previous: {previous or 'none'})")
        served = rec.deployed(previous).containers
        now = self.facts.container_ids(self.s, previous)
        if not served or any(now.get(name) != cid for name, cid in served.items()):
            raise Refused(f"{previous}'s containers are not the ones that served before (recreated by a later "
                          f"deploy, or removed by cleanup): deploy the version you want instead")
        return previous

    def write_secrets(self) -> None:
        """The colour goes back to what it ran, with the secrets it was given: only masked here."""
        secrets.hide_written(self.remote, self.s, self.new)

    def upload_files(self) -> None:
        """The colour goes back to its own copy, uploaded when it was deployed: its hashes, for the
        history."""
        self.uploaded = self.old_record.uploaded(self.new)

    def capped_start_command(self, services: tuple[str, ...], cap: float) -> str:
        # the containers already warmed up once, when they were deployed: no cap
        return self.start_command(services).then(
            Command(f"echo '{cpu.NO_CAP} not needed: a rollback starts containers that warmed up before'", 0))

    def start_command(self, services: tuple[str, ...]) -> Command:
        return compose.start(self.s, self.new, services)

    def undo_new_colour(self, services: tuple[str, ...] = ()) -> None:
        """Of the front, only what did not run is stopped again: the colour's front usually ran on
        (only its background was stopped), and a failed rollback leaves it so."""
        if stopped := tuple(x for x in self.s.front if not self.facts.running(self.s, self.new, x)):
            super().undo_new_colour(stopped)
        self.new_started = True

    def front_command(self) -> Command:
        return self.start_command(self.s.front)

    def recorded_colors(self, rec: Record, facts: Facts) -> Record:
        return rec  # the colour runs what the record already says


class Unstage(Deploy):
    """fab rollback while a colour is staged: that colour removed, and nothing else changed. Chosen
    by Rollback once the host's facts are read, before its sequence starts."""

    task = "rollback"
    done = UNSTAGED  # what this run ends as when all went well (a dry run: the plan)
    steps_run: frozenset[str] = frozenset()  # none of a deploy's: its sequence is remove_staged()

    def choose_target(self) -> Color:
        return (self.facts.record or Record()).staged

    def intent(self) -> str:
        return f"rollback removes the staged {self.new}"

    def sequence(self) -> None:
        self.remove_staged()

    def remove_staged(self) -> None:
        """Remove the staged colour (down, never -v; its secrets file) and say so in the record and
        the history (sent by finish()); the live colour, nginx and the rest are left as they are."""
        self.at("remove staged")
        self.say(f"removing {compose.project(self.s, self.new)}; {self.live or 'no colour'} stays as it is")
        res = self.send(compose.remove(self.s, self.new))
        self.result.from_color, self.result.to_color = self.new, self.live
        if res.ok:
            self.result.outcome = UNSTAGED
            rec = self.old_record.without_color(self.new)
            self.trip.at_close(state.write_record(self.s, rec.dump()), "the record was not updated")
        else:
            self.result.outcome, self.result.step = FAILED, self.step
            self.result.reason = f"`down` of the staged {self.new} failed: {res.why()}"
        self.result.version = version(self.s, self.facts, self.live) if self.live else "-"
        line = record.history_of(self.result, step=self.result.step, message=self.message)
        self.trip.at_close(state.append_history(self.s, line), "the history line was not written")
        self.say(f"removed the staged {self.new}" if res.ok else self.result.reason)
