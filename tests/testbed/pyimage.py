"""A real Python base image for the test bed, built with no registry (stdlib only).

The bed's hosts reach no image registry, so `fbg/python:3.11` is assembled on this machine as a
plain folder (a rootfs) and then tarred for `docker import`, the same way tests/testbed/bed.py
makes fbg/busybox:1 and fbg/redis:7:

- Debian's /usr/bin/python3.11 (NOT a pyenv or other python that may come first in PATH) and its
  standard library /usr/lib/python3.11, less what no app needs (test/, idlelib, tkinter,
  turtledemo, ensurepip, lib2to3, the static libpython in config-3.11-*; the test-only extension
  modules of lib-dynload);
- exactly the shared libraries `ldd` lists for the binary and for every extension module
  (ld-linux included), copied to the same paths (merged-/usr symlinks /lib, /lib64 kept as links);
- /usr/share/zoneinfo (Celery fails without it), /etc/passwd, /etc/group, /etc/nsswitch.conf,
  a 1777 /tmp;
- busybox-static's /bin/busybox with one symlink per applet, so `sh`, `wget`, `kill`, ... exist;
- site packages installed with `pip install --target <rootfs>/opt/site` (Celery 5 with redis
  support by default), run by Debian's python3.11 itself so that environment markers match the
  image's interpreter: Debian's python is 3.11.2 and redis-py needs async-timeout below 3.11.3,
  which a newer machine python's pip would skip.

The image is used with PYTHONPATH=/opt/site (set by IMPORT_CHANGES).

API:
    build_rootfs(dest, packages=PACKAGES, force=False) -> Path   cached folder
    build_tar(dest_tar, rootfs=None, packages=PACKAGES, force=False) -> Path  cached tar
    import_command(tar, image=IMAGE_PYTHON) -> str              the `docker import` shell line
    stamp(rootfs) -> dict | None                                 what a built rootfs holds

Run `python -m tests.testbed.pyimage DEST_TAR` to build (or reuse) a tar and print its size.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

IMAGE_PYTHON = "fbg/python:3.11"
PYTHON = "/usr/bin/python3.11"
STDLIB = "/usr/lib/python3.11"
ZONEINFO = "/usr/share/zoneinfo"
SITE = "opt/site"  # inside the rootfs
# Celery 5 with its redis transport/result backend; async-timeout explicitly, see the docstring.
PACKAGES = ("celery[redis]>=5.3,<6", "async-timeout")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_PATH = "/opt/site/bin:" + CLEAN_PATH
# `docker import --change ...` lines for the tar (docker import keeps no config of its own).
IMPORT_CHANGES = (
    "ENV PYTHONPATH=/opt/site",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONUNBUFFERED=1",
    f"ENV PATH={IMAGE_PATH}",
    'CMD ["python3"]',
)
# Bumped when the layout changes, so that cached rootfs folders are rebuilt.
FORMAT = 3
STAMP = "etc/fbg-pyimage.json"  # inside the rootfs, written last: its presence = complete

_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
# Loaded with dlopen, so ldd does not list them: glibc needs libgcc_s for pthread_exit/cancel
# (without it a threaded python aborts at exit: "libgcc_s.so.1 must be installed for
# pthread_exit to work").
DLOPENED = ("libgcc_s.so.1",)
_SKIP_DYNLOAD = ("_test", "_ctypes_test", "_xxtestfuzz", "_xxsubinterpreters", "xxlimited")
_APT_PACKAGES = ("python3.11", "python3-pip", "busybox-static", "tzdata")

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/tmp:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


class PyImageError(RuntimeError):
    """The rootfs could not be built; the message says why."""


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise PyImageError(f"{' '.join(map(shlex.quote, argv))} exited {p.returncode}\n"
                           f"--- stdout ---\n{p.stdout}--- stderr ---\n{p.stderr}")
    return p


def _clean_env() -> dict:
    """The environment for child commands: no pyenv/virtualenv/PYTHON* leaking into them."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PYENV", "VIRTUAL_ENV"))}
    env["PATH"] = CLEAN_PATH
    return env


def _debian_pip_works() -> bool:
    p = subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True, env=_clean_env())
    return p.returncode == 0


def ensure_prereqs() -> None:
    """Install Debian's python3.11 (+pip), busybox-static and tzdata with apt-get when missing."""
    missing = []
    if not os.access(PYTHON, os.X_OK) or not os.path.isdir(STDLIB):
        missing.append("python3.11")
    if not os.path.isdir(ZONEINFO):
        missing.append("tzdata")
    if not shutil.which("busybox", path=CLEAN_PATH):
        missing.append("busybox-static")
    if os.access(PYTHON, os.X_OK) and not _debian_pip_works():
        missing.append("python3-pip")  # best effort: the machine's pip is the fallback
    if not missing:
        return
    env = dict(_clean_env(), DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], capture_output=True, env=env)
    p = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0 and set(missing) - {"python3-pip"}:
        raise PyImageError(f"apt-get install {' '.join(missing)} failed:\n{p.stderr}")


def python_version() -> str:
    return _run([PYTHON, "-c", "import platform; print(platform.python_version())"],
                env=_clean_env()).stdout.strip()


def _key(packages: tuple[str, ...]) -> dict:
    """What a cached rootfs must match to be reused."""
    return {"format": FORMAT, "python": python_version(),
            "python_mtime": int(os.stat(PYTHON).st_mtime), "packages": list(packages)}


def stamp(rootfs: Path | str) -> dict | None:
    """The stamp of a complete rootfs (key + site package versions, size, build time), or None."""
    try:
        return json.loads((Path(rootfs) / STAMP).read_text())
    except (OSError, ValueError):
        return None


# -- pieces ----------------------------------------------------------------------------------
def _copy_file(src: str, root: Path) -> None:
    """Copy src's content (symlinks followed) to the same path under root, with merged-/usr
    directory links (/lib -> usr/lib) resolved so the rootfs keeps one copy per file."""
    real_dir = os.path.realpath(os.path.dirname(src))
    dest = root / real_dir.lstrip("/") / os.path.basename(src)
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), dest)


def _top_links(root: Path) -> None:
    """Mirror the machine's merged-/usr links for library folders (/lib, /lib64, /lib32, /libx32)."""
    for name in ("lib", "lib64", "lib32", "libx32"):
        p = Path("/") / name
        if p.is_symlink():
            (root / name).symlink_to(os.readlink(p))


def _ldd(paths: list[str]) -> set[str]:
    libs: set[str] = set()
    for path in paths:
        p = subprocess.run(["ldd", path], capture_output=True, text=True, env=_clean_env())
        if p.returncode != 0:  # "not a dynamic executable"
            continue
        for line in p.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                i = parts.index("=>")
                if len(parts) > i + 1 and parts[i + 1] == "not":
                    raise PyImageError(f"ldd {path}: {line.strip()}")
                lib = parts[i + 1] if len(parts) > i + 1 else ""
            else:
                lib = parts[0] if parts else ""
            if lib.startswith("/"):
                libs.add(lib)
    return libs


def _find_lib(soname: str) -> str:
    """The path of a library by its soname (ldconfig's cache, x86-64 entries first)."""
    out = _run(["/sbin/ldconfig", "-p"], env=_clean_env()).stdout
    lines = [line for line in out.splitlines()
             if line.strip().startswith(soname + " ") and " => " in line]
    lines.sort(key=lambda line: "x86-64" not in line)
    for h in (line.split(" => ")[-1].strip() for line in lines):
        if os.path.exists(h):
            return h
    raise PyImageError(f"{soname} not found (ldconfig -p)")


def _copy_stdlib(root: Path, with_pyc: bool) -> list[str]:
    """Copy /usr/lib/python3.11 (less _SKIP_STDLIB); return the extension modules copied."""
    dest = root / STDLIB.lstrip("/")

    def ignore(d: str, names: list[str]) -> set[str]:
        out = {n for n in names if n in _SKIP_STDLIB and (n != "__pycache__" or not with_pyc)}
        out |= {n for n in names if n.startswith("config-3.")}
        if os.path.basename(d) == "lib-dynload":
            out |= {n for n in names if n.startswith(_SKIP_DYNLOAD)}
        return out

    shutil.copytree(STDLIB, dest, symlinks=True, ignore=ignore)
    # Debian's sitecustomize.py is a link into /etc/python3.11
    for link in dest.glob("*.py"):
        if link.is_symlink() and os.path.isabs(os.readlink(link)):
            target = os.readlink(link)
            if os.path.exists(target):
                _copy_file(target, root)
    return [str(p) for p in (Path(STDLIB) / "lib-dynload").glob("*.so")
            if (dest / "lib-dynload" / p.name).exists()]


def _busybox(root: Path) -> None:
    bb = shutil.which("busybox", path=CLEAN_PATH)
    if not bb:
        raise PyImageError("busybox not found: apt-get install busybox-static")
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2(os.path.realpath(bb), root / "bin/busybox")
    for applet in _run([bb, "--list"]).stdout.split():
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")


def _pip_install(site: Path, packages: tuple[str, ...]) -> str:
    """pip install --target site; returns which pip was used."""
    common = ["install", "--target", str(site), "--no-warn-script-location",
              "--disable-pip-version-check", "--no-input", *packages]
    if _debian_pip_works():
        _run([PYTHON, "-m", "pip", *common], env=_clean_env())
        return f"{PYTHON} -m pip"
    # Fallback: this process's pip, told the image's interpreter; wheels only, so no build runs
    # on the wrong python. Scripts in site/bin then get this python's shebang: fix them below.
    # pip evaluates environment markers against the RUNNING python even with --python-version
    # (checked: redis' `python_full_version < "3.11.3"` dependency async-timeout is skipped under
    # a 3.11.7 pip, with --python-version 3.11 or 3.11.2): PACKAGES names async-timeout itself.
    _run([sys.executable, "-m", "pip", *common, "--python-version", "3.11",
          "--implementation", "cp", "--abi", "cp311", "--platform", "manylinux2014_x86_64",
          "--only-binary=:all:"], env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    for script in (site / "bin").glob("*") if (site / "bin").is_dir() else []:
        data = script.read_bytes()
        if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            script.write_bytes(b"#!" + PYTHON.encode() + b"\n" + data.split(b"\n", 1)[1])
    return f"{sys.executable} -m pip (--python-version 3.11 --only-binary=:all:)"


def _site_versions(root: Path) -> dict:
    out = {}
    for d in sorted((root / SITE).glob("*.dist-info")):
        name, _, ver = d.name[:-len(".dist-info")].partition("-")
        out[name.lower().replace("_", "-")] = ver
    return out


def _du(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.stat(p).st_size
    return total


# -- public ----------------------------------------------------------------------------------
def build_rootfs(dest: Path | str, packages: tuple[str, ...] = PACKAGES, force: bool = False,
                 with_pyc: bool = True) -> Path:
    """Assemble (or reuse) the rootfs folder of fbg/python:3.11 at dest and return dest.

    Reused when dest holds a complete build (its stamp) for the same python, packages and
    layout; otherwise rebuilt in dest.part and renamed into place. with_pyc keeps the stdlib's
    __pycache__ (14 MB; spares every container start from compiling what it imports).
    """
    dest = Path(dest).resolve()
    ensure_prereqs()
    key = _key(tuple(packages))
    old = stamp(dest)
    if not force and old is not None and old.get("key") == key:
        return dest
    t0 = time.monotonic()
    part = dest.with_name(dest.name + ".part")
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    root = part
    _top_links(root)
    # dev, proc, sys: empty mount points (docker fills them; a chroot test mounts them)
    for d, mode in (("etc", 0o755), ("tmp", 0o1777), ("root", 0o700), ("var", 0o755),
                    ("run", 0o755), ("dev", 0o755), ("proc", 0o555), ("sys", 0o555),
                    ("usr/bin", 0o755), ("usr/local/bin", 0o755), (SITE, 0o755)):
        (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / d, mode)
    _busybox(root)
    # interpreter + stdlib
    shutil.copy2(PYTHON, root / PYTHON.lstrip("/"))
    for name in ("python3", "python"):
        (root / "usr/bin" / name).symlink_to("python3.11")
    dynload = _copy_stdlib(root, with_pyc)
    shutil.copytree(ZONEINFO, root / ZONEINFO.lstrip("/"), symlinks=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "etc/nsswitch.conf").write_text(NSSWITCH)
    # site packages, then every library the binary and any extension module links against
    pip_used = _pip_install(root / SITE, tuple(packages))
    site_so = [str(p) for p in (root / SITE).rglob("*.so*") if p.is_file()]
    extra = [_find_lib(name) for name in DLOPENED]
    for lib in sorted(_ldd([PYTHON, *dynload, *site_so, *extra]) | set(extra)):
        if not lib.startswith(str(root)):  # a wheel's bundled .libs resolve inside the rootfs
            _copy_file(lib, root)
    st = {"key": key, "image": IMAGE_PYTHON, "pip": pip_used, "site": _site_versions(root),
          "build_seconds": round(time.monotonic() - t0, 1), "bytes": _du(root)}
    (root / STAMP).write_text(json.dumps(st, indent=1) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    part.rename(dest)
    return dest


def _tar_filter(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def build_tar(dest_tar: Path | str, rootfs: Path | str | None = None,
              packages: tuple[str, ...] = PACKAGES, force: bool = False) -> Path:
    """Build (or reuse) a tar of the rootfs for `docker import`, and return its path.

    rootfs defaults to a folder beside the tar (python.tar -> python.rootfs/), built with
    build_rootfs. Entries are relative paths ("usr/bin/python3.11"), owned by root, symlinks
    kept, like the tars of bed.py's _write_tar. The tar is rebuilt when missing or older than
    the rootfs' stamp.
    """
    dest_tar = Path(dest_tar).resolve()
    rootfs = Path(rootfs).resolve() if rootfs else dest_tar.with_suffix(".rootfs")
    build_rootfs(rootfs, packages=packages, force=force)
    st = rootfs / STAMP
    if not force and dest_tar.exists() and dest_tar.stat().st_mtime >= st.stat().st_mtime:
        return dest_tar
    dest_tar.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest_tar.with_name(dest_tar.name + ".part")
    with tarfile.open(tmp, "w") as tf:
        for dirpath, dirs, files in os.walk(rootfs):
            dirs.sort()
            rel = os.path.relpath(dirpath, rootfs)
            if rel != ".":
                # directories are added non-recursively, as they are walked
                tf.add(dirpath, arcname=rel, recursive=False, filter=_tar_filter)
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                tf.add(p, arcname=os.path.normpath(os.path.join(rel, f)), recursive=False,
                       filter=_tar_filter)
            # symlinks to directories are listed in dirs but not walked: add them as links
            for d in list(dirs):
                p = os.path.join(dirpath, d)
                if os.path.islink(p):
                    tf.add(p, arcname=os.path.normpath(os.path.join(rel, d)), recursive=False,
                           filter=_tar_filter)
    tmp.rename(dest_tar)
    return dest_tar


def import_command(tar: str, image: str = IMAGE_PYTHON) -> str:
    """The shell line that imports the tar (a path as the docker host sees it) as `image`."""
    changes = " ".join(f"--change {shlex.quote(c)}" for c in IMPORT_CHANGES)
    return f"docker import {changes} {shlex.quote(tar)} {shlex.quote(image)}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.testbed.pyimage DEST_TAR", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    tar = build_tar(Path(argv[0]))
    st = stamp(tar.with_suffix(".rootfs")) or {}
    print(json.dumps({"tar": str(tar), "tar_bytes": tar.stat().st_size,
                      "rootfs_bytes": st.get("bytes"), "rootfs_build_seconds":
                      st.get("build_seconds"), "seconds": round(time.monotonic() - t0, 1),
                      "python": st.get("key", {}).get("python"), "site": st.get("site"),
                      "import": import_command(f"/srv/fbg-images/{tar.name}")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
