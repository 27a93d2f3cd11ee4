"""tests/testbed/pyimage.py: the tar layout, the cache, the import line (no real build here)."""
import json
import os
import shlex
import tarfile

from tests.testbed import pyimage


def fake_rootfs(root):
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libx.so.1").write_bytes(b"\x7fELF")
    (root / "usr/bin/python3.11").write_bytes(b"#!")
    os.chmod(root / "usr/bin/python3.11", 0o755)
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / "lib").symlink_to("usr/lib")
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "etc").mkdir()
    (root / pyimage.STAMP).write_text(json.dumps({"key": {}}))
    return root


def test_tar_has_relative_root_owned_entries_links_kept(tmp_path, monkeypatch):
    root = fake_rootfs(tmp_path / "python.rootfs")
    calls = []
    monkeypatch.setattr(pyimage, "build_rootfs", lambda dest, **kw: calls.append(dest) or dest)
    tar = pyimage.build_tar(tmp_path / "python.tar")
    assert calls == [root]
    with tarfile.open(tar) as tf:
        m = {ti.name: ti for ti in tf.getmembers()}
    assert all(not n.startswith(("/", "./")) for n in m)
    assert all(ti.uid == 0 and ti.gid == 0 and ti.uname == "root" for ti in m.values())
    assert m["lib"].issym() and m["lib"].linkname == "usr/lib"
    assert "lib/libx.so.1" not in m and m["usr/lib/libx.so.1"].isfile()
    assert m["usr/bin/python3"].issym() and m["usr/bin/python3"].linkname == "python3.11"
    assert m["usr/bin/python3.11"].mode & 0o777 == 0o755
    assert m["tmp"].isdir() and m["tmp"].mode & 0o7777 == 0o1777
    assert pyimage.STAMP in m


def test_tar_is_reused_until_the_rootfs_stamp_is_newer(tmp_path, monkeypatch):
    root = fake_rootfs(tmp_path / "python.rootfs")
    monkeypatch.setattr(pyimage, "build_rootfs", lambda dest, **kw: dest)
    tar = pyimage.build_tar(tmp_path / "python.tar")
    first = tar.stat().st_mtime_ns
    assert pyimage.build_tar(tmp_path / "python.tar").stat().st_mtime_ns == first
    st = root / pyimage.STAMP
    os.utime(st, ns=(first + 10**9, first + 10**9))
    assert pyimage.build_tar(tmp_path / "python.tar").stat().st_mtime_ns != first


def test_import_command_sets_pythonpath_and_names_the_image():
    argv = shlex.split(pyimage.import_command("/srv/fbg-images/python.tar"))
    assert argv[:2] == ["docker", "import"] and argv[-2:] == ["/srv/fbg-images/python.tar",
                                                              "fbg/python:3.11"]
    changes = [argv[i + 1] for i, a in enumerate(argv) if a == "--change"]
    assert "ENV PYTHONPATH=/opt/site" in changes and 'CMD ["python3"]' in changes


def test_stamp_is_none_for_an_incomplete_rootfs(tmp_path):
    assert pyimage.stamp(tmp_path) is None
