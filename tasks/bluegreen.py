"""The blue-green sequence on one host. Read Deploy.run() top to bottom: it is the whole deploy.

    check sudo -> find the live colour -> prepare -> stop the live colour's background
    -> start the new front -> health check -> switch nginx -> start the new background
    -> settle -> record
    any failure from "stop" on: roll back (switch back, stop the new colour, restart the old
    background), keeping the failed colour's containers for their logs.
"""

from __future__ import annotations

import shlex
import time
from typing import Callable

from . import commands as cmd
from . import record
from .errors import Refused, StepFailed, Unreachable
from .facts import Facts, find_live, other, read, version
from .remote import Remote, Result
from .result import DEPLOYED, FAILED, REFUSED, ROLLED_BACK, UNREACHABLE, HostResult
from .settings import HostSettings

COMMAND_TIMEOUT = 120.0  # each compose, curl or nginx command, on top of its own waiting
PREPARE_TIMEOUT = 900.0  # each prepare command (a pull or a build can be slow on a Pi)
UP_TIMEOUT = 600.0  # `up` may build or pull images the prepare step did not

Say = Callable[[str], None]


class Deploy:
    """One host's deploy. Each step raises StepFailed; run() decides what that means."""

    def __init__(self, remote: Remote, s: HostSettings, say: Say = lambda msg: None):
        self.remote, self.s, self.say = remote, s, say
        self.result = HostResult(host=s.name, action="deploy")
        self.facts = Facts()
        self.live: str | None = None
        self.new = "blue"
        self.step = "connect"
        self.old_upstream: str | None = None
        # what has been changed so far, so the rollback undoes exactly that
        self.old_background_stopped = False
        self.new_started = False
        self.new_background_started = False
        self.switched = False

    def run(self) -> HostResult:
        started = time.monotonic()
        try:
            self.check_sudo()
            self.find_live_color()
            self.run_prepare()
            try:
                self.stop_old_background()
                self.start_new_front()
                self.wait_until_healthy()
                self.switch_upstream()
                self.start_new_background()
                self.wait_until_settled()
                self.result.outcome = DEPLOYED
                self.say(f"deployed: {self.new} serves")
            except StepFailed as failure:
                self.roll_back(failure)
            self.record_deploy()
        except StepFailed as failure:  # before anything was stopped: nothing to undo
            self.fail(ROLLED_BACK, failure.step, f"{failure.reason} (nothing was changed)")
        except Refused as refusal:
            self.fail(REFUSED, self.step, str(refusal))
        except Unreachable as lost:
            self.fail(UNREACHABLE, self.step, f"{lost}; the host was left mid-step: check it before deploying again")
        self.result.seconds = time.monotonic() - started
        return self.result

    # --- the steps, in order ---------------------------------------------------------------

    def find_live_color(self) -> None:
        self.at("live colour")
        self.facts = self.read_facts()
        if not self.facts.compose_file:
            raise Refused(f"{self.s.dir}/{self.s.compose_file} not found: put the app there, or set dir / "
                          "compose_file in the hosts file")
        self.live = find_live(self.s, self.facts)
        self.new = other(self.live) if self.live else "blue"
        self.old_upstream = self.facts.upstream
        self.result.from_color, self.result.to_color = self.live, self.new
        self.say(f"live colour: {self.live or 'none'}; deploying {self.new}")

    def check_sudo(self) -> None:
        if self.s.switch.mode != "nginx":
            return
        self.at("sudo")
        res = self.remote.run(cmd.sudo_check(), COMMAND_TIMEOUT)
        if not res.ok:
            raise StepFailed("sudo", f"`sudo -n` asks for a password or is refused ({res.why()}): allow the "
                             "SSH user passwordless sudo for nginx (a NOPASSWD line in /etc/sudoers.d)")

    def run_prepare(self) -> None:
        for line in self.s.prepare:
            self.at("prepare")
            self.say(f"prepare: {line}")
            self.check(cmd.prepare(self.s, self.new, line), PREPARE_TIMEOUT, f"`{line}` failed")

    def stop_old_background(self) -> None:
        if not self.live or not self.s.background:
            return
        self.at("stop old background")
        self.say(f"stopping {self.live} {', '.join(self.s.background)} (up to {self.s.stop_timeout:g} s each)")
        self.old_background_stopped = True  # even a half-done stop is undone by a start
        self.check(cmd.stop(self.s, self.live, self.s.background), self.s.stop_timeout + COMMAND_TIMEOUT,
                   f"could not stop {self.live}'s background services")

    def start_new_front(self) -> None:
        self.at("start new front")
        self.say(f"starting {self.new} {', '.join(self.s.front)} (port {self.s.port(self.new)})")
        self.new_started = True
        self.check(cmd.up(self.s, self.new, self.s.front), UP_TIMEOUT,
                   f"could not start {self.new}'s front services", service=self.s.web)

    def wait_until_healthy(self) -> None:
        self.at("health check")
        h = self.s.health
        budget = h.start_delay + h.retries * (h.timeout + h.interval) + COMMAND_TIMEOUT
        res = self.remote.run(cmd.wait_healthy(self.s, self.new), budget)
        tries = [line.split() for line in res.stdout.splitlines() if line.startswith("try ")]
        self.result.tries = len(tries)
        if not res.ok:
            code = tries[-1][-1] if tries and len(tries[-1]) == 3 else "?"
            answer = "no answer" if code in ("000", "?") else f"HTTP {code}"
            raise StepFailed("health check", f"{cmd.health_url(self.s, self.new)} gave {answer} after "
                             f"{len(tries)} tries", service=self.s.web)
        self.say(f"healthy after {len(tries)} tries")

    def switch_upstream(self) -> None:
        mode = self.s.switch.mode
        if mode == "none":
            return
        self.at("switch")
        self.say(f"switching {mode} to {self.new} (port {self.s.port(self.new)})")
        self.switched = True  # from here on, the rollback switches back
        if mode == "command":
            self.check(cmd.switch_command(self.s, self.new), COMMAND_TIMEOUT, "the switch command failed")
        else:
            self.point_nginx_at(self.new, cmd.upstream_text(self.s, self.s.port(self.new)))
        self.write_record(record.with_live(self.facts.record, self.s.app, self.new, self.live))
        self.check(cmd.verify(self.s), COMMAND_TIMEOUT,
                   f"{cmd.verify_url(self.s)} did not answer 2xx/3xx after the switch", service=self.s.web)

    def start_new_background(self) -> None:
        if not self.s.background:
            return
        self.at("start new background")
        self.say(f"starting {self.new} {', '.join(self.s.background)}")
        self.new_background_started = True
        self.check(cmd.up(self.s, self.new, self.s.background), UP_TIMEOUT,
                   f"could not start {self.new}'s background services", service=self.s.background[0])

    def wait_until_settled(self) -> None:
        if not self.s.background:
            return
        self.at("settle")
        self.say(f"checking that {', '.join(self.s.background)} stay up for {self.s.settle:g} s")
        res = self.remote.run(cmd.wait_settled(self.s, self.new, self.s.background),
                              self.s.settle + COMMAND_TIMEOUT)
        if not res.ok:
            what = res.stdout.strip().splitlines()[0] if res.stdout.strip() else res.why()
            raise StepFailed("settle", f"{what}, within settle ({self.s.settle:g} s)", service=what.split()[0])

    def record_deploy(self) -> None:
        """Write what each colour runs now and one history line; report the live version."""
        self.at("record")
        facts = self.read_facts()
        live = self.new if self.result.outcome == DEPLOYED else self.live
        rec = facts.record
        if self.result.outcome == DEPLOYED:
            rec = record.with_color(rec or {}, self.new, facts.images(self.s, self.new), facts.git)
            res = self.remote.run(cmd.write_record(self.s, record.dump(rec)), COMMAND_TIMEOUT)
            if not res.ok:
                self.result.left.append(f"the record was not updated ({res.why()})")
            facts.record = rec
        self.result.version = version(self.s, facts, live) if live else "-"
        line = record.history_line("deploy", self.s.name, self.result.outcome, **{
            "from": self.live, "to": self.new, "step": self.result.step, "reason": self.result.reason,
            "versions": {c: version(self.s, facts, c) for c in ("blue", "green")}})
        res = self.remote.run(cmd.append_history(self.s, line), COMMAND_TIMEOUT)
        if not res.ok:
            self.result.left.append(f"the history line was not written ({res.why()})")

    # --- rollback ----------------------------------------------------------------------------

    def roll_back(self, failure: StepFailed) -> None:
        """Put the host back: nginx to the old colour, the new colour stopped, the old background up."""
        self.result.step, self.result.reason = failure.step, failure.reason
        self.say(f"FAILED at {failure.step}: {failure.reason}; rolling back")
        self.result.log_tail = self.log_tail(failure.service)
        left = []
        if self.switched:
            left += self.switch_back()
        if self.new_started:
            res = self.remote.run(cmd.stop(self.s, self.new), self.s.stop_timeout + COMMAND_TIMEOUT)
            if not res.ok:
                left.append(f"{self.new} could not be stopped ({res.why()})")
        if self.old_background_stopped and not (left and self.new_background_started):
            res = self.remote.run(cmd.start(self.s, self.live, self.s.background), COMMAND_TIMEOUT)
            if not res.ok:
                left.append(f"{self.live}'s {', '.join(self.s.background)} did not start again ({res.why()})")
        elif self.old_background_stopped:
            left.append(f"{self.live}'s background was not restarted: {self.new}'s may still run")
        self.result.left = left
        self.result.outcome = FAILED if left else ROLLED_BACK
        self.say(f"rolled back: {self.live or 'nothing'} serves" if not left else f"rollback incomplete: {left}")

    def switch_back(self) -> list[str]:
        try:
            if self.s.switch.mode == "command" and self.live:
                self.check(cmd.switch_command(self.s, self.live), COMMAND_TIMEOUT, "the switch command failed")
            elif self.s.switch.mode == "nginx" and self.old_upstream is not None:
                self.point_nginx_at(self.live or "the old upstream", self.old_upstream)
            self.write_record(record.with_live(self.facts.record, self.s.app, self.live,
                                               (self.facts.record or {}).get("previous")))
            return []
        except StepFailed as e:
            return [f"traffic may still go to {self.new}: {e.reason}"]

    def log_tail(self, service: str | None) -> str:
        if not service or not self.new_started:
            return ""
        self.result.logs_command = f"ssh {self.s.ssh} {shlex.quote(cmd.logs(self.s, self.new, service, 200))}"
        res = self.remote.run(cmd.logs(self.s, self.new, service), COMMAND_TIMEOUT)
        return res.stdout.strip() or res.stderr.strip()

    # --- helpers -----------------------------------------------------------------------------

    def point_nginx_at(self, what: str, text: str) -> None:
        """Write the upstream file atomically, check the whole config, then reload."""
        self.check(cmd.write_root_file(self.s.switch.upstream_file, text), COMMAND_TIMEOUT,
                   f"could not write {self.s.switch.upstream_file}")
        res = self.remote.run(cmd.nginx_test(), COMMAND_TIMEOUT)
        if not res.ok:
            raise StepFailed(self.step, f"`nginx -t` rejects the config pointing at {what}: {res.why()}")
        self.check(cmd.reload(self.s), COMMAND_TIMEOUT, "the nginx reload failed")

    def write_record(self, rec: dict) -> None:
        self.check(cmd.write_record(self.s, record.dump(rec)), COMMAND_TIMEOUT, "could not write the record")
        self.facts.record = rec

    def read_facts(self) -> Facts:
        return read(self.remote, self.s, COMMAND_TIMEOUT)

    def check(self, command: str, timeout: float, what: str, service: str | None = None) -> Result:
        res = self.remote.run(command, timeout)
        if not res.ok:
            raise StepFailed(self.step, f"{what}: {res.why()}", service=service)
        return res

    def at(self, step: str) -> None:
        self.step = step

    def fail(self, outcome: str, step: str, reason: str) -> None:
        self.result.outcome, self.result.step, self.result.reason = outcome, step, reason
        self.say(f"{outcome} at {step}: {reason}")
