"""Open connections across the switch and the cleanup, on real hosts: a streaming response held open
through nginx (the example app's /cgi-bin/stream, a line a second) from before a deploy survives the
switch (the old nginx workers finish it with the old colour), survives a cleanup that waits for it,
and is cut, and counted, by a cleanup with a short wait or --force."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time

from .conftest import fab, hosts_file, rows, serves, set_version, states


class Stream:
    """GET /cgi-bin/stream?seconds=N through nginx, read line by line in a thread: (time, line) as
    the lines come, and how the response ended (whole, or cut: `error`)."""

    def __init__(self, ip: str, seconds: int):
        self.ip, self.seconds = ip, seconds
        self.lines: list[tuple[float, str]] = []
        self.error = ""
        self.ended = threading.Event()

    def __enter__(self) -> "Stream":
        self.conn = http.client.HTTPConnection(self.ip, 80, timeout=10)  # a line comes every second
        self.conn.request("GET", f"/cgi-bin/stream?seconds={self.seconds}")
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                self.lines.append((time.time(), line.decode().strip()))
        except Exception as e:  # IncompleteRead: nginx ended the chunked response without its last chunk
            self.error = f"{type(e).__name__}: {e}"
        self.ended.set()

    def __exit__(self, *exc) -> None:
        self.conn.close()
        self.thread.join(5)

    def after(self, t: float) -> list[str]:
        return [line for at, line in self.lines if at > t]

    def whole(self, served_by: str) -> bool:
        """Every line, then the last: served by `served_by` (e.g. "blue 1") from start to end."""
        expected = [f"{served_by} {i}" for i in range(1, self.seconds + 1)] + [f"{served_by} end"]
        return [line for _, line in self.lines] == expected


def deploy(path: str) -> float:
    """Deploy; the time it returned."""
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0, res.stdout + res.stderr
    return time.time()


def counts(stderr: str) -> list[int]:
    """The falling count the cleanup showed, in order."""
    return [int(n) for n in re.findall(r"open connections to blue: (\d+)", stderr)]


def result(stdout: str) -> dict[str, str]:
    """h1's row of the cleanup's last table (after the plan's), by column."""
    lines = stdout.splitlines()
    table = "\n".join(lines[max(i for i, line in enumerate(lines) if line.strip() == "fab cleanup"):])
    header = next(line for line in table.splitlines() if line.startswith("┃"))
    return dict(zip([c.strip() for c in header.split("┃")[1:-1]], rows(table)["h1"].split(" │ ")))


def last_history(h) -> dict:
    return json.loads((h.home / "app" / ".fab-bluegreen" / "app.history.jsonl").read_text().splitlines()[-1])


def test_a_stream_survives_the_switch_and_a_cleanup_that_waits_for_it(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, drain_connections="120"))
    deploy(path)
    for _ in range(20):  # finished requests through nginx: their connections are not counted
        assert serves(h1) == "blue 1"
    set_version(h1, "2")
    with Stream(h1.ip, 40) as stream:
        switched = deploy(path)
        assert serves(h1) == "green 2"  # new requests go to green...
        time.sleep(2)
        assert stream.after(switched), f"no line after the switch: {stream.lines} {stream.error}"
        assert not stream.ended.is_set(), "the stream ended before the cleanup: the test would prove nothing"
        started = time.time()
        res = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
        assert res.returncode == 0 and result(res.stdout)["result"] == "cleaned"
        assert stream.ended.wait(5)
    assert stream.whole("blue 1") and not stream.error, (stream.lines, stream.error)  # ...the stream ran to its end
    assert stream.lines[-1][0] > started  # it ended while the cleanup waited for it
    assert counts(res.stderr) == [1, 0]  # one connection: the stream's; then none
    assert result(res.stdout)["connections cut"] == "0" and last_history(h1)["cut"] == 0
    assert states(h1, "blue") == {}


def test_a_cleanup_with_a_short_wait_cuts_the_stream_and_counts_it_and_force_does_not_wait(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, drain_connections="2"))
    deploy(path)
    set_version(h1, "2")
    with Stream(h1.ip, 600) as stream:
        switched = deploy(path)
        time.sleep(2)
        assert stream.after(switched) and not stream.ended.is_set(), (stream.lines, stream.error)
        started = time.time()
        res = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
        took = time.time() - started
        assert res.returncode == 0 and result(res.stdout)["result"] == "cleaned"
        assert stream.ended.wait(10), "the stream still runs after the old colour was removed"
    assert "blue 1 end" not in [line for _, line in stream.lines]  # cut, not finished
    assert counts(res.stderr) == [1]  # still open after 2 s: cut
    assert "1 connection(s) to blue still open after 2 s: removing it cuts them" in res.stderr
    assert result(res.stdout)["connections cut"] == "1" and last_history(h1)["cut"] == 1
    assert took < 60, f"cleanup took {took:.0f} s with drain_connections = 2"
    assert states(h1, "blue") == {} and serves(h1) == "green 2"

    # --force: no wait at all, even with a long drain_connections
    path = str(hosts_file(tmp_path, bed, drain_connections="300"))
    set_version(h1, "3")
    with Stream(h1.ip, 600) as stream:
        deploy(path)  # to blue, the stream runs through green
        started = time.time()
        res = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes", "--force")
        took = time.time() - started
        assert res.returncode == 0 and result(res.stdout)["result"] == "cleaned"
        assert stream.ended.wait(10)
    assert "green 2 end" not in [line for _, line in stream.lines] and stream.lines
    assert "--force, no wait" in res.stderr and result(res.stdout)["connections cut"] == "1"
    assert took < 60, f"cleanup --force took {took:.0f} s"
    assert states(h1, "green") == {} and serves(h1) == "blue 3"
