"""State files on real hosts that are valid JSON but not what fab-bluegreen wrote: that host is
refused, naming the file, and left as it was; the other hosts deploy and the table is printed."""

from __future__ import annotations

import json

from .conftest import fab, hosts_file, rows, serves, set_version, states

ALL = ["web", "redis", "worker", "beat"]


def test_a_record_that_is_not_an_object_refuses_that_host_only(bed, hosts, tmp_path):
    h1, h2 = hosts[0], hosts[1]
    path = str(hosts_file(tmp_path, bed))
    first = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
    assert first.returncode == 0
    record = h1.home / "app" / ".fab-bluegreen" / "app.json"
    record.write_text("[1]\n")  # valid JSON, not the record's shape (the file keeps its owner)
    for h in (h1, h2):
        set_version(h, "2")

    res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "AttributeError" not in res.stderr
    table = rows(res.stdout)  # the table is printed, with both hosts
    assert "refused" in table["h1"]
    assert "~/app/.fab-bluegreen/app.json" in table["h1"] and "is a list, not a JSON object" in table["h1"]
    assert "deployed" in table["h2"]
    # h1 as it was: blue serves, nothing of green started, the record untouched
    assert serves(h1) == "blue 1"
    assert states(h1, "blue") == dict.fromkeys(ALL, "running") and states(h1, "green") == {}
    assert record.read_text() == "[1]\n"
    assert not (h1.home / "app" / ".fab-bluegreen" / "app.lock").exists()  # the lock was freed
    history = (h1.home / "app" / ".fab-bluegreen" / "app.history.jsonl").read_text().splitlines()
    last = json.loads(history[-1])  # still the first deploy's line: the refusal wrote none
    assert (last["action"], last["to"], last["result"]) == ("deploy", "blue", "deployed")
    # h2 went on
    assert serves(h2) == "green 2"
    assert json.loads((h2.home / "app" / ".fab-bluegreen" / "app.json").read_text())["live"] == "green"
