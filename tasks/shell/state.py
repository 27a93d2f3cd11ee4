"""The state files under dir/.fab-bluegreen/ (mode 0700, every file 0600): the record and the history
every deployer of the app shares, and the deploy lock beside them (made with mkdir: atomic). What the
record, a history line and the lock's info hold is built and checked in tasks/shell/record.py."""

from __future__ import annotations

from shlex import quote

from ..config.schema import HostSettings
from .base import MARK, in_dir, remote_path, why

STATE_DIR = ".fab-bluegreen"  # under dir: the record and history every deployer of the app shares


# --- the record and history, under dir -----------------------------------------------------

def record_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.json"


def history_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.history.jsonl"


def private(line: str) -> str:
    """Run line in a subshell whose new files are the SSH user's alone (umask 077: folders 0700,
    files 0600): the state files may hold what a deploy ran and why it failed. The umask stays in
    the subshell: the commands that ride along (compose, the user's hooks) keep the host's own."""
    return f"(umask 077 && {line})"


def state_dir() -> str:
    """Make dir/.fab-bluegreen (0700) if it is missing; false if a symbolic link stands in its place
    (nothing is written through it). The lock step also tightens the modes of what is there."""
    return f"[ ! -L {STATE_DIR} ] && {private(f'mkdir -p {STATE_DIR}')}"


def put(path: str, fill: str) -> str:
    """Shell, run in dir: write the state file `path` through a fresh temporary file beside it
    (mktemp: mode 0600, never an existing file or a link someone left there), then a rename:
    `fill` prints its text. A symbolic link in its place is refused (false, and a why line):
    nothing is written through it, and it is left for a person to look at."""
    p, tmp = quote(path), quote(path + ".XXXXXX")
    linked = why("%s/%s is a symbolic link: fab-bluegreen writes no state file through one (remove it)",
                 '"$PWD"', p)
    return (f"{{ [ ! -L {p} ] || {{ {linked}; false; }}; }} && fbg_tmp=$(mktemp {tmp}) && "
            f"{{ {fill} > \"$fbg_tmp\" && mv -f \"$fbg_tmp\" {p} || {{ rm -f \"$fbg_tmp\"; false; }}; }}")


def replace_file(s: HostSettings, path: str, fill: str) -> str:
    """Write a state file (see put()), making the state folder first if it is missing."""
    return in_dir(s, f"{state_dir()} && {put(path, fill)}")


def write_record(s: HostSettings, text: str) -> str:
    return replace_file(s, record_path(s), f"printf '%s\\n' {quote(text)}")


# --- each colour's secrets, beside the record ---------------------------------------------

def env_path(s: HostSettings, color: str) -> str:
    """A colour's secrets file (dotenv, 0600), under dir: each colour keeps its own."""
    return f"{STATE_DIR}/{s.app}.{color}.env"


def write_env(s: HostSettings, color: str) -> str:
    """Write a colour's secrets file from the command's standard input (never a command line: the
    text comes on the channel, see Remote.put), atomically, 0600."""
    return replace_file(s, env_path(s, color), "cat")


def read_env(s: HostSettings, color: str) -> str:
    """A colour's secrets file, if it has one (read only to mask its values: see host/deploy.py)."""
    return in_dir(s, f"cat {quote(env_path(s, color))} 2>/dev/null; true")


def env_file(s: HostSettings, color: str) -> str:
    """DEPLOY_ENV_FILE's value for a colour's commands (run in dir): its secrets file, absolute, or
    /dev/null for a colour deployed before it had one (its containers hold what they were given)."""
    path = quote(env_path(s, color))
    return f'"$(f={path}; [ -f "$f" ] && echo "$PWD/$f" || echo /dev/null)"'


# --- each colour's own copy of the uploaded files (upload), beside its secrets ---------------

def copy_dir(s: HostSettings, color: str) -> str:
    """The folder, under dir, of a colour's own copy of the uploaded files (the compose file)."""
    return f"{STATE_DIR}/{s.app}.{color}"


def copy_path(s: HostSettings, color: str, name: str) -> str:
    return f"{copy_dir(s, color)}/{name}"


def write_copy(s: HostSettings, color: str, name: str) -> str:
    """Write one uploaded file into a colour's folder from the command's standard input (never a
    command line: see Remote.put): through a fresh temporary file beside it, then a rename; never
    through a symbolic link, nor over a folder, standing in the way of the folder or the file."""
    folder, path = quote(copy_dir(s, color)), quote(copy_path(s, color, name))
    refused = why("%s/%s: a symbolic link or a folder stands in the way: fab-bluegreen writes a colour's "
                  "files in a folder of its own only", '"$(pwd)"', path)
    room = (f"{{ [ ! -L {folder} ] && {private(f'mkdir -p {folder}')} && [ ! -L {path} ] && [ ! -d {path} ] "
            f"|| {{ {refused}; exit 5; }}; }}")
    tmp = quote(copy_path(s, color, name) + ".XXXXXX")
    return in_dir(s, f"{state_dir()} && {room} && fbg_tmp=$(mktemp {tmp}) && {{ cat > \"$fbg_tmp\" "
                     f"&& mv -f \"$fbg_tmp\" {path} || {{ rm -f \"$fbg_tmp\"; false; }}; }}")


def append_history(s: HostSettings, line: str) -> str:
    """One line at the end of the history (made 0600 if new); never through a symbolic link."""
    path = quote(history_path(s))
    append = private(f"printf '%s\\n' {quote(line)} >> {path}")
    return in_dir(s, f"{state_dir()} && [ ! -L {path} ] && {append}")


HISTORY_LINE_BYTES = 4096  # a line fab writes is well under this: history() reads lines x this from the end
HISTORY_MAX_BYTES = 16 << 20  # and never more than this, however many lines are asked for
HISTORY_CUT = "(cut)"  # history() prints this for the line its byte cap cut into


def history(s: HostSettings, lines: int) -> str:
    """The last lines of the history, read from its end within a byte cap (a hostile line of 60 MB
    is not read whole); the first line, when the cap cut into it, is printed as HISTORY_CUT."""
    cap = min(int(lines) * HISTORY_LINE_BYTES, HISTORY_MAX_BYTES)
    path = f"{remote_path(s.dir)}/{quote(history_path(s))}"
    return (f"if [ -f {path} ]; then cut=$([ \"$(wc -c < {path})\" -gt {cap} ] && echo 1 || echo 0); "
            f"tail -c {cap} {path} | awk -v cut=\"$cut\" 'NR == 1 && cut == 1 {{ print \"{HISTORY_CUT}\"; next }} "
            f"{{ print }}' | tail -n {int(lines)}; fi")


# --- the deploy lock, beside the record: mkdir is atomic --------------------------------------

def lock_path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.lock"


NO_DIR_EXIT = 4  # lock(): the app's dir does not exist


BOOT_ID = "/proc/sys/kernel/random/boot_id"  # a new one at each boot


def boot_path(s: HostSettings) -> str:
    """The host's boot id when the lock was taken (a lock from before a reboot is stale: guard.staleness)."""
    return f"{lock_path(s)}/boot"


def lock(s: HostSettings, info: str, stale: str = "false") -> str:
    """Take the lock, or print who holds it: `acquired`, or `held NOW SINCE` and the holder's info.
    A held lock is taken once `stale` (shell, run in dir) put it right and freed it (what it
    prints comes first). On the way, the state folder and its files become the SSH user's alone
    (0700 and 0600), as earlier versions did not make them."""
    path = quote(lock_path(s))
    linked = why("%s/%s is a symbolic link: fab-bluegreen keeps its state in a folder of its own only",
                 '"$(pwd)"', STATE_DIR)
    boot = f"{{ cat {BOOT_ID} > {quote(boot_path(s))} 2>/dev/null; true; }}"
    write = private(f"printf '%s\\n' {quote(info)} > {path}/info && {boot}")
    make = f"mkdir -p {remote_path(s.dir)} 2>/dev/null; " if s.upload else ""  # upload brings the compose file
    return (f"{make}cd {remote_path(s.dir)} 2>/dev/null || {{ echo no-dir; exit {NO_DIR_EXIT}; }}; "
            f"[ ! -L {STATE_DIR} ] || {{ {linked}; exit 5; }}; {private(f'mkdir -p {STATE_DIR}')} && "
            f"{{ chmod -R go= {STATE_DIR} 2>/dev/null; true; }} && "
            f"if {private(f'mkdir {path} 2>/dev/null')} || {{ [ -d {path} ] && {{ {stale}; }} && "
            f"{private(f'mkdir {path} 2>/dev/null')}; }}; then {write} && echo acquired; "
            f"elif [ -d {path} ]; then echo held $(date +%s) $(stat -c %Y {path}); cat {path}/info 2>/dev/null; exit 3; "
            f"else echo cannot create {path} in \"$(pwd)\"; exit 5; fi")


def unlock(s: HostSettings, token: str, word: bool = False) -> str:
    """Free the lock only if it still carries this run's token: never someone else's (word: the
    token is a shell word already, e.g. a variable)."""
    path = quote(lock_path(s))
    return in_dir(s, f"if grep -qF {token if word else quote(token)} {path}/info 2>/dev/null; then rm -rf {path}; fi")


def look_lock(s: HostSettings, plan: str = "true") -> str:
    """The lock, if any (`held NOW SINCE` and its info), then the guard of the run that holds it:
    the guard file's token, its deadline (`TOKEN EPOCH`) and what it would do (`plan` prints it:
    the undo journal's words, journal.show)."""
    path, g = quote(lock_path(s)), quote(f"{STATE_DIR}/{s.app}.guard")
    return in_dir(s, f"if [ -d {path} ]; then echo held $(date +%s) $(stat -c %Y {path}); "
                     f"head -n 1 {path}/info 2>/dev/null; echo; fi; echo {MARK}guard; cat {g} 2>/dev/null; "
                     f"echo {MARK}until; cat {g}.until 2>/dev/null; echo {MARK}plan; {plan}; true")


def force_unlock(s: HostSettings, token: str, since: str) -> str:
    """Remove the lock that look_lock() showed: only if it still carries that run's token (or, for
    a lock without one, the same age), never one taken since. Prints `removed` or `changed`."""
    path = quote(lock_path(s))
    same = (f"grep -qF {quote(token)} {path}/info 2>/dev/null" if token else
            f"[ \"$(stat -c %Y {path} 2>/dev/null)\" = {quote(since)} ]")
    return in_dir(s, f"if [ ! -d {path} ]; then echo gone; elif {same}; then rm -rf {path} && echo removed; "
                     "else echo changed; fi")
