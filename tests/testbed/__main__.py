"""CLI: python -m tests.testbed up --hosts N [--cpus C] [--fresh] | down | status  (as root)."""
from __future__ import annotations

import argparse
import sys

from .bed import Bed, BedError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="build the bed (reuses a healthy bed of the same shape)")
    p_up.add_argument("--hosts", type=int, default=1)
    p_up.add_argument("--cpus", type=float, default=None, help="CFS quota per host, in CPUs")
    p_up.add_argument("--fresh", action="store_true", help="tear down and rebuild even if up")
    sub.add_parser("down", help="tear the bed down (a no-op when nothing is up)")
    sub.add_parser("status", help="show the hosts; exit 0 only if a bed is up and healthy")
    args = ap.parse_args(argv)
    bed = Bed()
    try:
        if args.cmd == "up":
            st = bed.state()
            if (not args.fresh and st.get("hosts") == args.hosts and st.get("cpus") == args.cpus
                    and bed.is_up(args.hosts)):
                bed.ensure_images()
                print(f"bed: already up with {args.hosts} host(s) in {bed.state_dir}; nothing to do"
                      " (use --fresh to rebuild)")
            else:
                bed.up(args.hosts, args.cpus)
            print(f"ssh config: {bed.ssh_config}   (e.g. ssh -F {bed.ssh_config} h1)")
        elif args.cmd == "down":
            bed.down()
        else:
            hosts = bed.hosts
            if not hosts:
                print("bed: not up")
                return 1
            ok = True
            print(f"bed: {len(hosts)} host(s), cpus={bed.cpus}, state in {bed.state_dir}")
            for h in hosts:
                checks = {"dockerd": h.docker_ping(), "sshd": h.port_open(22), "nginx": h.port_open(80)}
                ok &= all(checks.values())
                print(f"  {h.name} {h.ip}  " + "  ".join(f"{k}:{'ok' if v else 'DOWN'}"
                                                        for k, v in checks.items()))
            return 0 if ok else 1
    except BedError as e:
        print(f"bed error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
