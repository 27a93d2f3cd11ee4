"""The on-host record as a dataclass: read, changed only through with_*(), written back as it was."""

import json

from tasks.config.schema import Color
from tasks.shell.record import Deployed, Record, record_problem

WRITTEN = {"app": "app", "live": "green", "since": "2026-12-01T10:00:00+00:00", "previous": "blue",
           "colors": {"blue": {"images": {"web": "sha256:b"}, "commit": "abc", "containers": {"web": "idb"},
                               "deployed": "2026-11-30T10:00:00+00:00", "shipped": {"web": 12}},
                      "green": {"images": {"web": "sha256:g"}, "commit": None, "containers": {"web": "idg"},
                                "deployed": "2026-12-01T10:00:00+00:00"}},
           "later": {"a key": "a later version wrote"}}


def test_a_record_reads_as_typed_values_and_an_unchanged_one_is_written_back_as_it_was():
    rec = Record.from_json(json.loads(json.dumps(WRITTEN)))
    assert (rec.live, rec.previous) == (Color.GREEN, Color.BLUE) and rec.live.other == Color.BLUE
    assert rec.deployed("blue").containers == {"web": "idb"} and rec.deployed("green").commit is None
    assert rec.deployed(None) == Deployed() and Record().deployed("blue") == Deployed()
    assert json.loads(rec.dump()) == WRITTEN
    assert json.loads(Record.from_json({"live": "blue"}).dump()) == {"live": "blue"}  # an older, shorter record


def test_a_changed_record_keeps_what_it_does_not_know_and_passes_its_own_check():
    rec = Record.from_json(json.loads(json.dumps(WRITTEN)))
    back = rec.with_live("app", Color.BLUE, Color.GREEN)
    assert (back.live, back.previous) == ("blue", "green") and back.since != rec.since
    assert rec.with_live("app", Color.GREEN, Color.BLUE).since == rec.since  # same colour: since stays
    new = back.with_color(Color.GREEN, {"web": "sha256:g2"}, "", {"web": "idg2"})
    data = json.loads(new.dump())
    assert data["later"] == WRITTEN["later"] and data["colors"]["blue"]["shipped"] == {"web": 12}
    assert data["colors"]["green"]["images"] == {"web": "sha256:g2"} and data["colors"]["green"]["commit"] is None
    assert record_problem(data) is None
    gone = json.loads(new.without_color(Color.GREEN).dump())
    assert set(gone["colors"]) == {"blue"} and gone["previous"] is None
    assert json.loads(rec.dump()) == WRITTEN  # the record read is unchanged (frozen)
