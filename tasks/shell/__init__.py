"""Every remote command line is born here: pure functions, no I/O, one noun per module.

Each function returns the exact shell line the host runs, so a plan can be printed and
unit-tested without SSH. Values from hosts.toml are quoted with shlex.quote, or were
validated by tasks/config/ (colours, ports, service names). `~` in `dir` is the SSH user's
home: it is expanded by the remote shell through "$HOME", never by quoting tricks.

Importing them loads neither Fabric, paramiko nor rich (tests/unit/test_imports.py checks it).
"""
