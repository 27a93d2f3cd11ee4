"""What runs against a host: the runner (remote.py: SSH through Fabric, a dry run, or recorded for
tests), the sequences (deploy.py with its rollback, cleanup.py, drain.py), the read-only looks
(inspect.py), and what they read back from the host (facts.py, broker.py, lock.py, check.py).

The command lines come from tasks/shell/; Fabric and paramiko are imported by remote.py only, when
a connection is made."""
