"""Images on a host, for build.where = "local" (images built off the host and shipped to it): what
the host is (its platform), what it holds (every image's ID and layers), and the load of an archive
streamed to it, then the tags the new colour's compose file names. Pure: command lines and the
parser of what they print; tasks/host/ship.py runs them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from shlex import quote

from .base import MARK

# uname -m -> Docker's platform; Docker's own architecture, when it answers, is what loads and runs
# the images (a 64-bit kernel with a 32-bit userland says aarch64 but runs arm images)
MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm/v7",
            "armv6l": "arm/v6", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}
SNAPSHOTTER = "io.containerd.snapshotter"  # in DriverStatus: the containerd image store


def platform() -> str:
    """One line: `uname -m` and Docker's architecture."""
    return "echo \"$(uname -m) $(docker version -f '{{.Server.Arch}}' 2>/dev/null)\""


def parse_platform(text: str) -> str | None:
    """linux/amd64, linux/arm64, linux/arm/v7 ...; None when the line says nothing known."""
    words = text.split()
    machine = MACHINES.get(words[0]) if words else None
    docker = words[1] if len(words) > 1 else ""
    if docker == "arm":  # Docker says no variant: uname -m has it
        return f"linux/{machine if machine and machine.startswith('arm/') else 'arm/v7'}"
    if docker:
        return f"linux/{docker}"
    return f"linux/{machine}" if machine else None


def inventory() -> str:
    """What the host holds and can take, one round trip: a zstd to decompress with, the image store
    (containerd's takes no partial archive) and the free space of Docker's root dir, then each image's
    ID and layers (diff IDs), one line each."""
    return (f"echo {MARK}images; command -v zstd >/dev/null 2>&1 && echo zstd; "
            "info=$(docker info -f '{{.DockerRootDir}} {{json .DriverStatus}}') || exit 3; "
            "root=${info%% *}; echo \"store ${info#* }\"; "
            "echo \"free $(df -Pk \"$root\" 2>/dev/null | awk 'NR==2 {print $4}') $root\"; "
            "ids=$(docker image ls -aq --no-trunc | sort -u); "
            "[ -z \"$ids\" ] || docker image inspect -f 'image {{.Id}} {{json .RootFS.Layers}}' $ids")


@dataclass
class HostImages:
    """What inventory() found on a host."""
    zstd: bool = False
    partial: bool = True  # the engine loads an archive that lacks the layers it has (not containerd's store)
    free_kb: int | None = None  # free space of Docker's root dir
    root: str = ""
    images: dict[str, tuple[str, ...]] = field(default_factory=dict)  # image ID -> its layers' diff IDs


def parse_inventory(text: str) -> HostImages | None:
    """None when the output is not inventory()'s (docker did not answer)."""
    if f"{MARK}images" not in text.splitlines():
        return None
    found = HostImages()
    for line in text.split(f"{MARK}images\n", 1)[1].splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "zstd":
            found.zstd = True
        elif kind == "store":
            found.partial = SNAPSHOTTER not in rest
        elif kind == "free":
            kb, _, found.root = rest.partition(" ")
            found.free_kb = int(kb) if kb.isdigit() else None
        elif kind == "image":
            image_id, _, layers = rest.partition(" ")
            try:
                found.images[image_id] = tuple(json.loads(layers) or ())
            except json.JSONDecodeError:
                continue
    return found


def room(size: int) -> int:
    """What loading layers of `size` bytes takes in Docker's root dir: `docker load` unpacks the
    archive there, then each layer: about twice their bytes."""
    return 2 * size


def load(zstd: bool) -> str:
    """Decompress what arrives on stdin into `docker load` (which then says `Loaded image ID: ...`)."""
    return f"{'zstd -dcq' if zstd else 'gzip -dc'} | docker load"


def tag(tags: list[tuple[str, str]]) -> str:
    """`docker tag ID NAME` for each (image ID, name): what the new colour's `up` runs."""
    return " && ".join(f"docker tag {quote(image)} {quote(name)}" for image, name in tags) or "true"
