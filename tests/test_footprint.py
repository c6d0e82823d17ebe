"""Heap footprint of the core under MicroPython: exact figures (the same
interpreter build gives the same bytes), so they are held as tests."""


from host_tools import mpy
from host_tools.bench import core as bench
from host_tools.desk import replay
from tests.conftest import ROOT, bundled

CORE_HEAP_TARGET = 32 * 1024


def flood_plain(tmp_path):
    return replay.plain_copy(bundled("flood-event"), tmp_path / "flood-event.jsonl")


def test_the_core_alone_fits_in_32_kb_replaying_the_flood(tmp_path):
    lib = mpy.compile_package(ROOT / "firmware" / "citynode", tmp_path / "lib").parent
    b = bench.heap_breakdown(flood_plain(tmp_path), lib)
    assert b["messages"] > 4000
    core_data = b["live_data_peak"] - b["reader_data_peak"]
    assert 0 < core_data < b["live_data_peak"]
    assert b["core_code"] + core_data <= CORE_HEAP_TARGET, b


def test_the_whole_flood_replay_runs_in_the_default_heap_and_not_in_a_tiny_one(tmp_path):
    lib = mpy.compile_package(ROOT / "firmware" / "citynode", tmp_path / "lib").parent
    path = flood_plain(tmp_path)
    assert bench.replays_within(path, replay.DEFAULT_HEAP, lib)
    assert not bench.replays_within(path, "16K", lib)
