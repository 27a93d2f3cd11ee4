"""build.where = "local": send one host the images built for it off the host, only what it lacks,
then tag them with the names its new colour's compose file gives them (so that colour's `up` neither
builds nor pulls them). It runs before anything on the host is stopped: a failure changes nothing.

One read (what the host holds: image IDs and layer chains, zstd, the image store, free space), then
per image it lacks one stream over the host's SSH connection into `docker load`; the tags ride with
the last stream, or go alone when nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..archive import ArchiveError, Part, chain_ids, compressor, host_chains, human
from ..build import Builds, Built
from ..config.schema import Color, HostSettings
from ..errors import StepFailed
from ..shell import images
from .remote import Remote

Say = Callable[[str], None]


@dataclass
class Shipped:
    bytes: dict[str, int] = field(default_factory=dict)  # image name -> bytes sent (0: the host had it)
    version: str = ""  # the source's git describe


def platform(remote: Remote, s: HostSettings) -> str | None:
    """The host's platform (linux/amd64, linux/arm64 ...), read before the build."""
    res = remote.read(images.platform(), s.timeouts.command)
    return images.parse_platform(res.stdout) if res.ok else None


def ship(remote: Remote, s: HostSettings, builds: Builds, color: Color, say: Say) -> Shipped:
    """Send what the host lacks of its build and tag it for `color`; StepFailed("ship") if it cannot."""
    built = builds.for_host(s)
    if built.error:
        raise StepFailed("ship", built.error)
    names = builds.names(s, color)
    res = remote.read(images.inventory(), s.timeouts.command)
    have = images.parse_inventory(res.stdout)
    if have is None:
        raise StepFailed("ship", f"cannot list the host's images: {res.why()}")
    if not built.images:  # a dry run, and the builder has no last build to compare with
        say("dry run: nothing built yet on the builder: a real run builds, then sends what the host lacks")
        placeholder = [("<the built image>", name) for name in dict.fromkeys(names.values())]
        remote.stream(f"{images.load(have.zstd)} && {images.tag(placeholder)}", _Unbuilt(), s.timeouts.prepare)
        return Shipped(version=built.version)
    shipped = Shipped(version=built.version)
    sends = _parts(s, builds, built, names, have, shipped, say)
    tags = [(image, names[service]) for service, image in built.images.items()]
    for i, (name, part) in enumerate(sends):
        shipped.bytes[name] = _send(remote, s, name, part, tags if i == len(sends) - 1 else [], builds, say)
    if not sends:
        res = remote.run(images.tag(tags), s.timeouts.command)
        if not res.ok:
            raise StepFailed("ship", f"could not tag the images for {color}: {res.why()}")
    if built.last:
        say("dry run: nothing was built; these figures compare the host with the builder's last build")
    return shipped


def _parts(s: HostSettings, builds: Builds, built: Built, names: dict[str, str], have: images.HostImages,
           shipped: Shipped, say: Say) -> list[tuple[str, Part]]:
    """What goes to the host, per image it lacks (the image named for the new colour, and its part);
    an image it has is noted as 0 bytes."""
    chains, compress = host_chains(have.images), compressor(have.zstd)
    if not have.partial:
        say("the host's Docker keeps its images in the containerd store, which loads no partial archive: "
            "sending whole images")
    first: dict[str, str] = {}  # image ID -> the first service that runs it (its name is the image's)
    for service, image in built.images.items():
        first.setdefault(image, service)
    parts = []
    for image, service in first.items():
        name = names[service]
        if image in have.images:
            shipped.bytes[name] = 0
            say(f"{name}: the host has {image[7:19]} already: nothing to send")
            continue
        try:
            archive = builds.archive(built, image)
        except ArchiveError as e:
            raise StepFailed("ship", f"{name}: {e}") from None
        part = archive.part(chains, have.partial, compress)
        if have.free_kb is not None and images.room(part.size) > have.free_kb * 1024:
            raise StepFailed("ship", f"{name}: loading it needs about {human(images.room(part.size))} in "
                             f"{have.root or 'Docker'}, which has {human(have.free_kb * 1024)} free: make room "
                             "(docker image prune, fab cleanup --prune-images), then deploy again")
        chains |= set(chain_ids([layer.diff_id for layer in archive.layers]))  # a next image skips these
        say(f"{name}: sending {part}")
        parts.append((name, part))
    return parts


def _send(remote: Remote, s: HostSettings, name: str, part: Part, tags: list[tuple[str, str]], builds: Builds,
          say: Say) -> int:
    """One image into `docker load` on the host (then the tags, if given): the bytes sent."""
    command = images.load(part.compress == "zstd") + (f" && {images.tag(tags)}" if tags else "")
    bar = builds.bar(s.name, name, part)
    try:
        res = remote.stream(command, part, s.timeouts.prepare, bar.sent)
    except ArchiveError as e:
        raise StepFailed("ship", f"{name}: {e}") from None
    finally:
        bar.done()
    if not res.ok:
        raise StepFailed("ship", f"{name}: docker load on the host failed: {res.why()}")
    if not remote.dry_run:
        say(f"{name}: {human(bar.total)} sent, loaded" + (" and tagged" if tags else ""))
    return bar.total


class _Unbuilt:
    """A dry run with nothing built: what the stream would carry, in words."""

    def __str__(self) -> str:
        return "the layers this host lacks of the images, once built"

    def __iter__(self):
        return iter(())
