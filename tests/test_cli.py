"""The citynode command line: help that explains, output a person can read,
figures a program can read."""

import json
import re
import subprocess
import sys

import pytest

from host_tools import cli
from tests.conftest import ROOT, bundled


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_top_level_help_lists_the_commands():
    out = run_cli("--help").stdout
    for command in ("replay", "synth", "sim", "demo"):
        assert command in out
    assert "COMMAND --help" in out


@pytest.mark.parametrize("command,words", [
    ("replay", ["--runtime", "--json", "--events", "--report", "--heap", "examples:", "FILE:LINE"]),
    ("synth", ["parking-day", "flood-event", "dry-week", "--seed", "docs/synthetic-models.md"]),
    ("sim", ["FLASH", "--heap", "mpremote connect", "soft reset"]),
    ("demo", ["--broker", "--short", "--out", "--speed", "mpremote"]),
])
def test_subcommand_help_explains_itself(command, words):
    out = run_cli(command, "--help").stdout
    for w in words:
        assert w in out, w


def test_no_command_is_a_usage_error():
    p = run_cli()
    assert p.returncode == 2
    assert "usage:" in p.stderr


def test_replay_prints_events_messages_and_scores(replays, capsys):
    assert cli.main(["replay", str(bundled("flood-event"))]) == 0
    out = capsys.readouterr().out
    assert "street alert WATCH (was normal)" in out
    assert "2026-07-14 " in out
    env = sum(1 for m in replays("flood-event").messages if m[1] == "env")
    assert "messages: env %d, event 10, water " % env in out
    assert "water street: MAE" in out
    assert "false alerts 0" in out


def test_replay_json_is_machine_readable(replays, capsys):
    assert cli.main(["replay", str(bundled("flood-event")), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runtime"] == "cpython"
    assert doc["scores"]["water"]["street"]["false_alerts"] == []
    assert doc["stats"] == replays("flood-event").stats
    assert doc["stats"]["samples"] > 10000


def test_replay_writes_events_and_messages_files(tmp_path, capsys):
    ev, msgs = tmp_path / "ev.jsonl", tmp_path / "out" / "msgs.jsonl"
    assert cli.main(["replay", str(bundled("flood-event")), "--events", str(ev),
                     "--messages", str(msgs)]) == 0
    events = [json.loads(x) for x in ev.read_text().splitlines()]
    assert [e["alert"] for e in events if e["kind"] == "alert"][:3] == ["watch", "warning", "danger"]
    assert all("t" in e and "ts" in e for e in events)
    messages = [json.loads(x) for x in msgs.read_text().splitlines()]
    assert {m["topic"] for m in messages} == {"env", "water", "event"}


def test_replay_payloads_flag_prints_every_message(replays, capsys):
    assert cli.main(["replay", str(bundled("flood-event")), "--payloads"]) == 0
    out = capsys.readouterr().out
    water = [m for m in replays("flood-event").messages if m[1] == "water"]
    assert len(water) > 1000
    assert len(re.findall(r"^\S+ \S+  water ", out, re.M)) == len(water)


def test_replay_on_micropython_from_the_cli(capsys):
    assert cli.main(["replay", str(bundled("flood-event")), "--runtime", "micropython", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runtime"] == "micropython"
    assert doc["events"] == 10


def test_too_small_a_heap_is_one_clear_line(capsys):
    assert cli.main(["replay", str(bundled("flood-event")), "--runtime", "micropython",
                     "--heap", "8K"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "out of memory with a 8K heap" in err


def test_api_parameters_are_shown_as_flags():
    from host_tools.cli.flags import flags

    assert flags("`baud` must be a positive number") == "--baud must be a positive number"
    assert flags("`connect_attempts` must be 0 or more") == "--connect-attempts must be 0 or more"
    assert flags("`stale_s` must be above 0 seconds") == "--stale must be above 0 seconds"
    assert flags("no parameter here: 'x'") == "no parameter here: 'x'"
