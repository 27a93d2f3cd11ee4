"""`upload`: the local files (the compose file first of all) each deploy copies into the new colour's
own folder on the host, so that each colour runs its own copy (tasks/shell/compose.py). The loader
checked them (tasks/config/loader.py: each a readable regular file, relative to the hosts file);
here they are read once per run on the workstation, the same bytes for every host, with their hashes
for the history. Their text goes to the host on a channel's standard input, never on a command line
(tasks/host/deploy.py, upload_files)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .schema import HostSettings


@dataclass(frozen=True)
class Upload:
    name: str  # its name on the host, in the colour's folder
    path: str  # the local file it was read from
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def short(self) -> str:
        """What the history keeps: the first 12 hex digits of its sha256."""
        return self.sha256[:12]


def read(path: str) -> Upload:
    try:
        return Upload(Path(path).name, path, Path(path).read_bytes())
    except OSError as e:  # it was readable when the hosts file was loaded
        raise ConfigError(f"{path}: cannot be read: {e.strerror or e} (upload)") from None


def for_hosts(hosts: list[HostSettings]) -> dict[str, tuple[Upload, ...]]:
    """Each host's files to upload ((): none), each file read once however many hosts share it."""
    read_already: dict[str, Upload] = {}
    files: dict[str, tuple[Upload, ...]] = {}
    for s in hosts:
        for path in s.upload:
            if path not in read_already:
                read_already[path] = read(path)
        files[s.name] = tuple(read_already[p] for p in s.upload)
    return files


def compose_upload(s: HostSettings) -> str:
    """The local file uploaded as the compose file (the loader made sure there is one)."""
    return next(p for p in s.upload if Path(p).name == Path(s.compose_file).name)
