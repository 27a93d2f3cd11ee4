"""The hosts file: the settings' schema (schema.py) and the loader that validates hosts.toml into it
(loader.py). Light to import: neither Fabric, paramiko nor rich."""
