"""`fab setup`'s commands: what it reads of a host (nginx's whole configuration as `nginx -T` dumps
it, the address the SSH connection came to, the host's name), the nginx site that proxies to the
upstream the switch rewrites, and the one command that makes the changes and puts them back when
`nginx -t` rejects them. tasks/host/setup.py decides what to change."""

from __future__ import annotations

from shlex import quote

from ..config.schema import HostSettings
from .base import LAST_LINE, MARK, Command, remote_path, why
from .nginx import nginx_test, nginx_workers, reload_applied, switching, upstream_text, write_root_file

WARN = MARK + "warn "  # a warning line of apply(): nginx -t's own warnings about the new site
# nginx -t's own reason in $out: its first [emerg] line (its last line only says "test failed")
NGINX_ERROR = '"$(printf \'%s\\n\' "$out" | grep -m 1 -e \'\\[emerg\\]\' -e \'\\[crit\\]\' || ' + LAST_LINE[3:-2] + ')"'


def facts(s: HostSettings) -> str:
    """One read: whether dir and the upstream file exist, the address and name the host answers the
    SSH connection with, and nginx's configuration (`nginx -T`, through sudo) or why it fails."""
    f = quote(s.switch.upstream_file)
    return "; ".join([
        f"echo {MARK}dir; [ -d {remote_path(s.dir)} ] && echo yes",
        f"echo {MARK}upstream; {{ [ -e {f} ] || sudo -n test -e {f}; }} 2>/dev/null && echo yes",
        f'echo {MARK}address; echo "${{SSH_CONNECTION:-}}"; hostname',
        f"echo {MARK}nginx; sudo -n nginx -T 2>/dev/null || "
        f"{{ out=$(sudo -n nginx -t 2>&1); echo {MARK}nginx-fails {NGINX_ERROR}; }}",
    ])


def site_text(s: HostSettings, names: list[str], include: str = "", ipv6: bool = False) -> str:
    """The site: port 80 for these names (validated host names and addresses), everything to the
    upstream; on IPv6 too where nginx listens there already (else `listen [::]:80` may fail).
    include: the upstream file, when nginx does not include it already (else nginx would see the
    upstream twice: `duplicate upstream`)."""
    head = f"include {include};  # upstream {s.switch.upstream_name}: the live colour's port, rewritten by each switch\n" \
        if include else f"# upstream {s.switch.upstream_name} is in {s.switch.upstream_file}, rewritten by each switch\n"
    return (
        f"# written by fab-bluegreen setup for the app {s.app}: yours to edit (setup never writes it again)\n"
        f"{head}"
        "server {\n"
        "    listen 80;\n"
        f"{'    listen [::]:80;' + chr(10) if ipv6 else ''}"
        f"    server_name {' '.join(names)};\n"
        "    location / {\n"
        f"        proxy_pass http://{s.switch.upstream_name};\n"
        "        proxy_http_version 1.1;\n"
        '        proxy_set_header Connection "";\n'
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Real-IP $remote_addr;\n"
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "        proxy_set_header X-Forwarded-Proto $scheme;\n"
        "    }\n"
        "}\n"
    )


def _absent(path: str, what: str) -> str:
    p = quote(path)
    return (f"if [ -e {p} ] || [ -L {p} ] || sudo -n test -e {p} 2>/dev/null; then "
            f"{why(f'%s exists already but nginx does not load it: enable it, or move it away ({what})', p)}; exit 2; fi")


def apply(s: HostSettings, make_dir: bool, upstream: bool, site: str = "", text: str = "", link: str = "") -> Command:
    """Make the changes in one round trip, each only where it is planned: dir (as the SSH user,
    else through sudo, owned by the SSH user); the first upstream file (blue's port); the site,
    and its link in sites-enabled. Then `nginx -t`: if it fails, what this command made is removed
    again (nothing changed, exit 3); else nginx reloads and the command waits until it serves the
    new configuration. Exit 2: nothing could be made (nothing changed); 4, 5, 8: the reload (see
    nginx.reload_applied)."""
    d = remote_path(s.dir)
    undo: list[str] = []
    parts = [nginx_workers(s)]
    if site:
        parts.append(_absent(site, "setup writes the site there"))
    if link:
        parts.append(_absent(link, "setup links the site there"))
    if make_dir:
        parts.append(f"{{ mkdir -p {d} 2>/dev/null || sudo -n install -d -o \"$(id -un)\" -g \"$(id -gn)\" {d}; }} "
                     f"|| {{ {why('could not create %s, not even through sudo -n', quote(s.dir))}; exit 2; }}")
        undo.append(f"{{ rmdir {d} 2>/dev/null || sudo -n rmdir {d}; }}")
    writes = []
    if upstream:
        writes.append((s.switch.upstream_file, write_root_file(s.switch.upstream_file, upstream_text(s, s.port("blue")))))
    if site:
        writes.append((site, write_root_file(site, text)))
    if link:
        writes.append((link, f"sudo -n ln -s {quote(site)} {quote(link)}"))
    for path, command in writes:
        back = "; ".join(reversed(undo)) + "; " if undo else ""
        parts.append(f"{command} || {{ {back}{why('could not write %s through sudo -n', quote(path))}; exit 2; }}")
        undo.append(f"sudo -n rm -f {quote(path)}")
    if writes:
        back = "; ".join(reversed(undo))
        parts += [f"if ! out=$({nginx_test()} 2>&1); then {back}; "
                  f"{why('nginx -t rejects what setup wrote, so it was removed again: %s', NGINX_ERROR)}; exit 3; fi",
                  f"printf '%s\\n' \"$out\" | grep -i 'conflicting server name' | sed 's/^/{WARN}/'",
                  reload_applied(s)]
    return Command("; ".join(parts), switching(s))

