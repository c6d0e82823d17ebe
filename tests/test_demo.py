"""The demo (host_tools/desk/demo.py) end to end, in short mode: an embedded
amqtt broker, two virtual boards provisioned with mpremote, a subscriber
checking what they publish against the CPython replay of the same slices,
and the HTML reports."""

import io
import json
import subprocess
import sys

import pytest

from host_tools.desk import demo, replay
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("demo")
    lines = io.StringIO()
    summary = demo.run_demo(out_dir=out_dir, short=True, out=lines)
    return out_dir, summary, lines.getvalue()


def test_both_nodes_publish_the_replay_without_gaps(short_run):
    out_dir, summary, text = short_run
    assert summary["complete"], text
    assert set(summary["nodes"]) == {"parking", "flood"}
    for name, n in summary["nodes"].items():
        assert n["status"] == "online", (name, n)
        # seq 1..N, each seen, in order: contiguous per node
        assert n["gaps"] == 0 and n["out_of_order"] == 0, (name, n)
        assert n["received"] == n["last_seq"] == n["expected"], (name, n)
        # the replay's messages plus the health messages, the same stream
        assert n["expected"] == n["replay_messages"] + n["health"], (name, n)
        assert n["health"] >= 1
        assert n["same_as_replay"], name
        assert n["alerts"] == n["replay_alerts"]
        assert n["occupancy_changes"] == n["replay_occupancy_changes"]


def test_the_summary_numbers_are_those_of_a_replay_of_the_slices(short_run):
    out_dir, summary, text = short_run
    for name in ("parking", "flood"):
        result = replay.run(out_dir / ("%s.jsonl" % name))
        n = summary["nodes"][name]
        assert n["replay_messages"] == len(result.messages)
        assert n["node"] == result.header["node"]
        assert n["replay_alerts"] == sum(1 for _t, p in result.events if p["kind"] == "alert")
        assert n["replay_occupancy_changes"] == sum(1 for _t, p in result.events if p["kind"] == "occupancy")
    # the slices show something happening
    assert summary["nodes"]["parking"]["occupancy_changes"] >= 1
    assert summary["nodes"]["flood"]["alerts"] >= 1
    assert "gaps 0" in text and "reports:" in text


def test_the_boards_were_provisioned_through_mpremote(short_run):
    out_dir, _summary, text = short_run
    for name in ("parking", "flood"):
        flash = out_dir / ("flash-%s" % name)
        for f in ("boot.py", "main.py", "config.json", "rec.jsonl", "citynode/board/node.py",
                  "citynode/link/mqtt.py"):
            assert (flash / f).is_file(), (name, f)
        assert not (flash / "citynode" / "__pycache__").exists()
        assert (flash / "rec.jsonl").read_bytes() == (out_dir / ("%s.jsonl" % name)).read_bytes()
        cfg = json.loads((flash / "config.json").read_text())
        assert cfg["hal"]["recording"] == "/rec.jsonl"
    assert text.count("mpremote connect ") == 2
    assert text.count("power cycle") == 2


def test_the_reports_are_written(short_run):
    out_dir, summary, text = short_run
    for name in ("parking", "flood"):
        path = out_dir / ("%s.html" % name)
        assert summary["nodes"][name]["report"] == str(path)
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_text().lstrip().lower().startswith("<!doctype html")
        assert str(path) in text


def test_live_view_renders(tmp_path):
    """The rich table, on a console that is a terminal, with a given broker."""
    from rich.console import Console

    broker = demo.EmbeddedBroker().start()
    try:
        screen = io.StringIO()
        log = io.StringIO()
        console = Console(file=screen, force_terminal=True, width=160)
        summary = demo.run_demo(out_dir=tmp_path, short=True, console=console, out=log,
                                broker_url="mqtt://%s:%d" % (broker.host, broker.port))
    finally:
        broker.stop()
    assert summary["complete"], log.getvalue()
    shown = screen.getvalue()
    assert "citynode demo" in shown and "park-demo-1" in shown and "street-demo-1" in shown


def test_help_explains_the_options():
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "demo", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30, check=False)
    assert p.returncode == 0, p.stderr
    for option in ("--broker", "--short", "--out", "--speed"):
        assert option in p.stdout
    assert "mpremote" in p.stdout and "report" in p.stdout


def test_bad_broker_url_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "demo", "--short", "--out", str(tmp_path),
                        "--broker", "http://x"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["demo: --broker must look like mqtt://HOST:PORT, not 'http://x'"]
