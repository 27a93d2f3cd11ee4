"""The put-back at boot: where the host runs systemd and the SSH user has `sudo -n`, fab setup
registers a oneshot unit, fab-bluegreen-<app>-<user>.service, that runs once at each boot, after
docker: it puts back a run that a power cut or reboot left halfway, as the next run would (guard.
recover(): the journal run, the guard's history line with cause "reboot" and by "boot", the lock
freed), so the host is right again before anyone runs fab. It does nothing when there is no lock,
or one taken since the boot.

The unit runs dir/.fab-bluegreen/<app>.boot.sh as the SSH user; every lock take rewrites that
script (keep(), riding the lock's round trip), so it is always this version's recover(). Where
the host cannot have the unit (no systemd, no passwordless sudo), nothing changes: the next run
puts the host back, as before. A deploy never registers the unit: only fab setup writes to /etc."""

from __future__ import annotations

from shlex import quote

from ..config.schema import HostSettings
from . import guard
from .base import MARK, SYSTEMD, Command, remote_path, why
from .state import STATE_DIR, lock_path, private, put, state_dir

UNIT_DIR = "/etc/systemd/system"
CHECK = "boot-putback"  # fab check's line: ok CHECK registered ..., warn CHECK not available: ...
BY = guard.BOOT  # the history line's `by`
REGISTERED, NOT_REGISTERED, NOT_AVAILABLE = "registered", "not registered", "not available"
KEPT, DONE = MARK + "boot-kept", MARK + "boot-registered"  # what register() prints
PLAIN = "A-Za-z0-9_./-"  # the only characters a path or a user name may have in the unit's text


def script_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.boot.sh"


def script(s: HostSettings) -> str:
    """The boot script's text: in dir, put right a lock that a reboot left (guard.recover, by BY);
    nothing when there is none, or it was taken since the boot (its boot id is this boot's)."""
    return (f"# fab-bluegreen: put {s.app} back after a reboot mid-deploy (written at each lock take)\n"
            f"cd {remote_path(s.dir)} || exit 0\n[ -d {quote(lock_path(s))} ] || exit 0\n"
            f"{guard.recover(s, BY)}\nexit 0\n")


def write_script(s: HostSettings) -> str:
    """Shell, run in dir (the state folder there): write the boot script (0600: sh reads it)."""
    return put(script_path(s), "printf %s " + quote(script(s)))


def keep(s: HostSettings) -> str:
    """Shell, run in dir: rewrite the boot script; never false (a unit without it does not run)."""
    return f"{{ {write_script(s)}; }} >/dev/null 2>&1; true"


def unit_name(s: HostSettings, user: str) -> str:
    """fab-bluegreen-<app>-<user>.service (app: a compose project name; user: PLAIN characters)."""
    return f"fab-bluegreen-{s.app}-{user}.service"


def find(s: HostSettings, systemd: str = SYSTEMD, unit_dir: str = UNIT_DIR) -> str:
    """Shell, run anywhere: sets $fbg_boot to why the host cannot have the unit ("" when it can),
    then $fbg_name, $fbg_unit (its file) and $fbg_text (its text, as setup writes it). dir must
    exist for the text (its absolute path goes into it)."""
    plain = f"*[!{PLAIN}]*"
    text = "\\n".join([
        "[Unit]", f"Description=fab-bluegreen: put {s.app} back after a reboot mid-deploy (%s)",
        "After=docker.service", "Wants=docker.service", "ConditionPathExists=%s/" + script_path(s), "",
        "[Service]", "Type=oneshot", "User=%s", "Environment=HOME=%s", "ExecStart=/bin/sh %s/" + script_path(s), "",
        "[Install]", "WantedBy=multi-user.target"])
    return (f"fbg_boot=; fbg_u=$(id -un); fbg_d=$(cd {remote_path('~')} && cd {remote_path(s.dir)} 2>/dev/null "
            f"&& pwd -P); fbg_name=fab-bluegreen-{s.app}-$fbg_u.service; fbg_unit={quote(unit_dir)}/$fbg_name; "
            f"if [ ! -d {quote(systemd)} ]; then fbg_boot='no systemd'; "
            "elif ! sudo -n true 2>/dev/null; then fbg_boot='no passwordless sudo'; "
            f"else case \"$fbg_u\" in ''|-*|{plain}) fbg_boot=\"the user name $fbg_u is not plain\";; esac; "
            f"case \"$fbg_d$HOME\" in {plain}) fbg_boot=\"$fbg_d or $HOME has characters a unit file does not "
            "take plainly\";; esac; fi; "
            f"fbg_text=$(printf '{text}' \"$fbg_d\" \"$fbg_d\" \"$fbg_u\" \"$HOME\" \"$fbg_d\")")


def registered() -> str:
    """Shell, after find(): true when the unit is there with this text, and enabled."""
    return ('[ -n "$fbg_d" ] && [ "$(sudo -n cat "$fbg_unit" 2>/dev/null)" = "$fbg_text" ] && '
            'systemctl is-enabled --quiet "$fbg_name" 2>/dev/null')


def check(s: HostSettings, systemd: str = SYSTEMD, unit_dir: str = UNIT_DIR) -> str:
    """fab check's line: ok CHECK registered, or warn CHECK not registered / not available (why)."""
    later = "the next run puts the host back"
    return (f"{find(s, systemd, unit_dir)}; if [ -n \"$fbg_boot\" ]; then say warn {CHECK} "
            f"\"{NOT_AVAILABLE}: $fbg_boot ({later})\"; elif {registered()}; then say ok {CHECK} "
            f"\"{REGISTERED} ($fbg_unit: puts the host back at boot)\"; else say warn {CHECK} "
            f"\"{NOT_REGISTERED}: fab setup registers $fbg_unit ({later} until then)\"; fi")


def register(s: HostSettings, systemd: str = SYSTEMD, unit_dir: str = UNIT_DIR) -> Command:
    """fab setup, once dir exists: write the boot script, then the unit (through sudo -n, 0644),
    reload systemd and enable it; prints KEPT where it is there already, as it is, DONE once made.
    Exit 2 (and a why line), nothing changed: the host cannot have it."""
    write = ("printf '%s\\n' \"$fbg_text\" | sudo -n sh -c 'umask 022 && cat > \"$1\"' sh \"$fbg_unit\" && "
             "sudo -n systemctl daemon-reload && sudo -n systemctl enable --quiet \"$fbg_name\"")
    refused = why("the put-back at boot is not available: %s", '"$fbg_boot"')
    return Command(
        f"{find(s, systemd, unit_dir)}; if [ -n \"$fbg_boot\" ]; then {refused}; exit 2; fi; "
        f"cd {remote_path(s.dir)} && {state_dir()} && {private(write_script(s))} "
        f"&& if {registered()}; then echo {KEPT}; else {write} && echo {DONE}; fi", 60.0)
