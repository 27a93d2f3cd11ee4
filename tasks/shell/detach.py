"""Processes that outlive the SSH session (the guard, the warm-up lift, the sampler): started
detached (setsid, or `sudo -n systemd-run --scope` where logind ends a user's processes at logout),
stopped only while their PID still carries the run's tag, and the pre-flight line that says which
way works on the host."""

from __future__ import annotations

from shlex import quote


# fbg_detach PIDFILE LOG SCRIPT: start SCRIPT (sh) so that it survives the end of the SSH session.
# Where logind ends a user's processes at logout (KillUserProcesses=yes and no linger), setsid is
# not enough: the script then runs in a scope of its own through `sudo -n systemd-run`. SCRIPT
# writes "$$ TAG" to PIDFILE first (see detached()); fbg_detach waits for that line. PIDFILE and LOG
# are removed first: a symbolic link left in their place is never written through.
DETACH_FUNCTIONS = (
    "fbg_logout_kills() { "
    "v=$(busctl get-property org.freedesktop.login1 /org/freedesktop/login1 "
    "org.freedesktop.login1.Manager KillUserProcesses 2>/dev/null) || return 1; [ \"$v\" = 'b true' ] || return 1; "
    "[ \"$(loginctl show-user \"$(id -un)\" -p Linger --value 2>/dev/null)\" != yes ]; }; "
    "fbg_detach() { rm -f \"$1\"; [ \"$2\" = /dev/null ] || rm -f \"$2\"; if fbg_logout_kills; then "
    "sudo -n systemd-run --quiet --scope --uid=\"$(id -u)\" --gid=\"$(id -g)\" env HOME=\"$HOME\" "
    "setsid nohup sh -c \"$3\" "
    "> \"$2\" 2>&1 < /dev/null & j=; else setsid nohup sh -c \"$3\" > \"$2\" 2>&1 < /dev/null & j=$!; fi; "
    # it started once its pid file is written, or once it ended well (a lift of 0 s removes its file;
    # only a child of this shell can be asked that: not sudo's, which runs as root)
    "n=0; while [ ! -s \"$1\" ] && [ $n -lt 100 ]; do [ -z \"$j\" ] || kill -0 $j 2>/dev/null || break; "
    "sleep 0.05; n=$((n+1)); done; [ -s \"$1\" ] || { [ -n \"$j\" ] && ! kill -0 $j 2>/dev/null && wait $j; }; }"
)


def detached(script: str, tag: str, pid_file: str, log: str = "/dev/null") -> str:
    """Run `script` detached (fbg_detach must be defined: DETACH_FUNCTIONS), in the current folder.
    Its pid file holds "PID TAG", and TAG is part of its command line: kill_detached() checks both."""
    body = f"echo \"$$ \"{quote(tag)} > {quote(pid_file)}; {script}"
    return f"fbg_detach {quote(pid_file)} {quote(log)} {quote(body)}"


def still_running(pid_file: str, tag: str) -> str:
    """A shell condition (sets $p): the process a pid file names still runs and is the one that
    wrote it (the file holds the tag, and so does the process's command line; a reused PID does
    not). Both arguments are shell words, quoted by the caller."""
    return (f"{{ read p t 2>/dev/null < {pid_file} && [ \"$t\" = {tag} ] && "
            f"tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline | grep -qF -- {tag}; }}")


def kill_detached(pid_file: str, tag: str) -> str:
    """Stop a detached process (its whole process group) and remove its pid file, only if the PID
    still belongs to it: a stale file never kills a stranger."""
    f = quote(pid_file)
    return f"if {still_running(f, quote(tag))}; then kill -- -$p 2>/dev/null || kill $p 2>/dev/null; fi; rm -f {f}"


def detach_check() -> str:
    """A pre-flight line: can the guard outlive the SSH session on this host?"""
    return ("if fbg_logout_kills; then if sudo -n systemd-run --version >/dev/null 2>&1; then say ok detach "
            "'logind ends your processes at logout: the guard, the warm-up lift and the sampler run through "
            "sudo systemd-run'; else say fail detach \"logind ends your processes at logout "
            "(KillUserProcesses=yes) and sudo -n systemd-run is not allowed: the guard would die with the SSH "
            "session; run: sudo loginctl enable-linger $(id -un)\"; fi; else say ok detach "
            "'setsid: processes outlive the SSH session'; fi")
