"""Restart policies follow the colour. Docker starts a container whose policy is `always` when its
daemon starts, even one stopped by hand: after a reboot the old colour's worker and beat would run
again beside the live colour's. So a container the tool stops keeps no policy (`docker update
--restart=no`, before the stop: a power cut between the two cannot leave it with one), and gets
its own back when the tool starts it again (a rollback, the guard, drain's workers).

What each container's policy was is kept in dir/.fab-bluegreen/<app>.restart, one line per
container: `<full id> <policy>` (e.g. `always`, `on-failure:3`), written before the update and
removed once the policy is back; lines of containers that no longer exist are dropped."""

from __future__ import annotations

from shlex import quote

from ..config.schema import HostSettings
from .base import remote_path, why
from .state import STATE_DIR, put, state_dir

# a container's ID and its restart policy as `docker update --restart` takes it back
# (the count only for on-failure: docker prints 0 for the others, which `docker update` takes too)
POLICY = ("{{.Id}} {{.HostConfig.RestartPolicy.Name}}{{if eq .HostConfig.RestartPolicy.Name \"on-failure\"}}"
          ":{{.HostConfig.RestartPolicy.MaximumRetryCount}}{{end}}")
OFF = "no"


def path(s: HostSettings) -> str:
    return f"{STATE_DIR}/{s.app}.restart"


def listed(ids: list[str]) -> str:
    """Shell printing these container IDs (the facts listed them)."""
    return "printf '%s\\n' " + " ".join(quote(i) for i in ids)


def _in_dir(s: HostSettings, ids: str, line: str) -> str:
    """line in a subshell in dir, with $fbg_ids the IDs `ids` prints; nothing to do when there are none."""
    return f"( cd {remote_path(s.dir)} && fbg_ids=$({ids}) && [ -n \"$fbg_ids\" ] || exit 0; {line} )"


def hold(s: HostSettings, ids: str) -> str:
    """Keep the restart policy of each container `ids` prints (once: a policy kept earlier, while its
    container has none now, stays), then set none. Fails (a why line) if it could not."""
    f = quote(path(s))
    keep = ("{ printf '%s\\n' \"$fbg_all\" | sed 's/^/+ /'; printf '%s\\n' \"$fbg_now\"; cat " + f + " 2>/dev/null; } | "
            f"awk '$1 == \"+\" {{ok[$2] = 1; next}} NF == 2 && $2 != \"{OFF}\" && ok[$1] && !seen[$1]++'")
    return _in_dir(s, ids, (
        f"fbg_all=$(docker ps -aq --no-trunc) && fbg_now=$(docker inspect -f {quote(POLICY)} $fbg_ids) && "
        f"{state_dir()} && {put(path(s), keep)} && docker update --restart={OFF} $fbg_ids >/dev/null || "
        f"{{ {why('could not turn off the restart policy of the containers it stops')}; exit 1; }}"))


def give_back(s: HostSettings, ids: str) -> str:
    """The restart policy hold() kept for each container `ids` prints, back on it (the others keep theirs)."""
    f = quote(path(s))
    lines = "printf '%s\\n' \"$fbg_ids\" | awk 'NR == FNR {want[$1] = 1; next} WHICH' - " + f
    back, rest = lines.replace("WHICH", "want[$1] && NF == 2"), lines.replace("WHICH", "!want[$1]")
    return _in_dir(s, ids, (
        f"[ -f {f} ] || exit 0; {back} | while read -r fbg_id fbg_policy; do "
        f"docker update --restart=\"$fbg_policy\" \"$fbg_id\" >/dev/null || exit 1; done && {put(path(s), rest)} || "
        f"{{ {why('could not give the containers it starts their restart policy back')}; exit 1; }}"))
