"""An image saved with `docker save` on this machine's disk, and the part of it one host lacks.

`docker save` writes an image's config, one uncompressed tar per layer, and manifest.json naming
them in order. `docker load` (the engine's classic image store) reads the tar of a layer only when
it lacks that layer with everything below it (its chain ID): an archive without the tars a host
already has loads there, and yields the same image ID. So what goes to a host is manifest.json, the
config and the layers whose chain the host lacks, streamed through a compressor in chunks, never
the whole image in memory. The containerd image store takes only whole archives: there the whole
image goes (Part.whole).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

CHUNK = 256 * 1024
COMPRESSORS = {"zstd": ("zstd", "-q", "-c", "-3"), "gzip": ("gzip", "-c", "-6")}


class ArchiveError(Exception):
    """The saved image cannot be read, or the compressor failed."""


def human(n: int) -> str:
    """Bytes for a person: 0 B, 870 B, 8.7 kB, 85.2 MB, 1.2 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def chain_ids(diff_ids: list[str] | tuple[str, ...]) -> list[str]:
    """The chain ID of each layer: its own diff ID and every one below it (how Docker finds a layer)."""
    chains: list[str] = []
    for diff in diff_ids:
        chains.append(diff if not chains else "sha256:" + hashlib.sha256(f"{chains[-1]} {diff}".encode()).hexdigest())
    return chains


def host_chains(images: dict[str, tuple[str, ...]]) -> set[str]:
    """Every layer chain a host holds, from each of its images' layers."""
    return {chain for diff_ids in images.values() for chain in chain_ids(diff_ids)}


def compressor(host_has_zstd: bool) -> str:
    """zstd where both ends have it, else gzip."""
    return "zstd" if host_has_zstd and shutil.which("zstd") else "gzip"


class Count:
    """Bytes sent of one part (tasks/report.py's bar shows them as they go)."""

    def __init__(self) -> None:
        self.total = 0

    def sent(self, n: int) -> None:
        self.total += n

    def done(self) -> None:
        pass


@dataclass(frozen=True)
class Layer:
    member: str  # its tar in the archive: <dir>/layer.tar, or blobs/sha256/<digest>
    diff_id: str
    chain_id: str
    size: int


class Archive:
    """One image's `docker save` on this machine's disk: its ID, config and layers, read once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with tarfile.open(self.path) as tar:
                members = {m.name.removeprefix("./"): m for m in tar}
                manifest = json.load(tar.extractfile(members["manifest.json"]))
                if len(manifest) != 1:
                    raise ValueError(f"it holds {len(manifest)} images, not one")
                self.config, names = manifest[0]["Config"], manifest[0]["Layers"]
                config = tar.extractfile(members[self.config]).read()
                diff_ids = json.loads(config)["rootfs"]["diff_ids"]
                if len(names) != len(diff_ids):
                    raise ValueError(f"{len(names)} layers in manifest.json, {len(diff_ids)} in the config")
                self.layers = tuple(Layer(name, diff, chain, members[name].size)
                                    for name, diff, chain in zip(names, diff_ids, chain_ids(diff_ids)))
        except (OSError, KeyError, TypeError, ValueError, tarfile.TarError) as e:
            raise ArchiveError(f"{self.path}: not an image saved by docker save ({type(e).__name__}: {e})") from None
        self.id = "sha256:" + hashlib.sha256(config).hexdigest()
        self.size = sum(layer.size for layer in self.layers)

    def part(self, chains: set[str], partial: bool, compress: str) -> Part:
        """What a host holding these layer chains lacks (all of it where it takes no partial archive)."""
        if not partial:
            return Part(self, self.layers, compress, whole=True)
        return Part(self, tuple(layer for layer in self.layers if layer.chain_id not in chains), compress)


class Part:
    """The part of an archive one host receives: an iterable of compressed chunks (each iteration
    compresses anew), a description for a plan, and how far it got (`fed`: bytes into the compressor).
    One image per archive, so manifest.json goes as it is: it names every layer, and the host's
    `docker load` reads the tars of only those it lacks."""

    def __init__(self, archive: Archive, layers: tuple[Layer, ...], compress: str, whole: bool = False):
        self.archive, self.layers, self.compress, self.whole = archive, layers, compress, whole
        self.size = sum(layer.size for layer in layers)  # the layers' bytes, before compression
        self.fed = 0
        files = {"manifest.json", archive.config, *(layer.member for layer in layers)}
        self.files = files | {str(p) for name in files for p in PurePosixPath(name).parents if str(p) != "."}
        self._error: BaseException | None = None

    def __str__(self) -> str:
        kept = len(self.archive.layers) - len(self.layers)
        what = "the whole image" if self.whole else f"{len(self.layers)} of {len(self.archive.layers)} layers"
        left_out = f", {kept} the host has left out" if kept else ""
        return f"{what} {self.archive.id[7:19]} ({human(self.size)} before {self.compress}{left_out})"

    def __iter__(self) -> Iterator[bytes]:
        proc = subprocess.Popen(COMPRESSORS[self.compress], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        self.fed, self._error = 0, None
        writer = threading.Thread(target=self._write, args=(proc.stdin,), daemon=True)
        writer.start()
        finished = False
        try:
            while chunk := proc.stdout.read(CHUNK):
                yield chunk
            finished = True
        finally:
            if not finished and proc.poll() is None:
                proc.kill()  # the receiving end stopped: stop compressing
            writer.join()
            proc.wait()
            proc.stdout.close()
        if self._error is not None:
            raise ArchiveError(f"could not read {self.archive.path}: {self._error}")
        if proc.returncode != 0:
            raise ArchiveError(f"{self.compress} failed (exit {proc.returncode})")

    def _write(self, pipe) -> None:
        """The tar of this part into the compressor (a thread: the compressor's output is read meanwhile)."""
        try:
            with tarfile.open(self.archive.path) as src, \
                    tarfile.open(fileobj=_Counting(pipe, self), mode="w|", format=tarfile.PAX_FORMAT) as out:
                for member in src:
                    if self.whole or member.name.removeprefix("./") in self.files:
                        out.addfile(member, src.extractfile(member) if member.isfile() else None)
        except (BrokenPipeError, ValueError):
            pass  # the compressor was stopped (the host failed): nothing more to write
        except (OSError, tarfile.TarError) as e:
            self._error = e
        finally:
            try:
                pipe.close()
            except OSError:
                pass


class _Counting:
    """A pipe that counts what goes through it into part.fed."""

    def __init__(self, pipe, part: Part):
        self.pipe, self.part = pipe, part

    def write(self, data: bytes) -> int:
        self.pipe.write(data)
        self.part.fed += len(data)
        return len(data)
