"""Fuzzing the command parser: `Commands.handle`, what a `cmd/<name>`
payload goes through, and `Commands.load`, what the stored settings go
through at boot. Random bytes, random JSON values and mutated good commands
must each give an ack (applied, or rejected with a reason) and never
raise; a stored file of any content is applied or ignored."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citynode.config import check_sensors
from citynode.link.commands import Commands
from citynode.sense.core import Core
from citynode.ticks import Clock
from tests.core.helpers import Collect
from tests.core.test_commands import SENSORS
from tests.fuzz_settings import fuzz, mutate, rngs, scratch_dir, value

NAMES = ["set_thresholds", "set_interval", "recalibrate", "reboot", "status", "nope", ""]
GOOD = [
    ("set_thresholds", {"sensor": "street", "thresholds_mm": [50, 150, 300], "hysteresis_mm": 10, "id": "a"}),
    ("set_interval", {"sensor": "street", "fast_s": 10, "slow_s": 60}),
    ("set_interval", {"sensor": "bay-01", "period_s": 2}),
    ("recalibrate", {"sensor": "bay-03"}),
    ("reboot", {"id": "r"}),
    ("status", {}),
]
STORE = {"version": 1, "sensors": {"street": {"thresholds_mm": [60, 160, 310], "fast_s": 5},
                                   "bay-01": {"period_s": 3}}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with scratch_dir(tmp_path_factory, "commands") as d:
        yield str(d / "settings.json")


def commands(store):
    check_sensors(SENSORS)
    return Commands(Core(SENSORS, Clock(0, 0), Collect()), store)


def check_ack(ack, topic):
    assert ack["cmd"] == (topic[4:] if topic.startswith("cmd/") else topic)
    assert type(ack["ok"]) is bool
    if not ack["ok"]:
        assert type(ack["reason"]) is str, ack
    json.dumps(ack)  # what the node publishes: JSON, so a field name the sender wrote stays one string


@fuzz
@given(st.sampled_from(NAMES).map(lambda n: "cmd/" + n) | st.text(max_size=12), st.binary(max_size=80))
def test_fuzz_command_random_bytes(store, topic, payload):
    check_ack(commands(store).handle(topic, payload), topic)


@fuzz
@given(rngs)
def test_fuzz_command_json_values(store, rng):
    r = rng.random()
    name, good = rng.choice(GOOD)
    name = name if r < 0.9 else rng.choice(NAMES)
    payload = good if r < 0.2 else mutate(rng, good) if r < 0.9 else value(rng)
    c = commands(store)
    topic = "cmd/" + name
    for _ in range(2):  # a second command on the state the first left
        check_ack(c.handle(topic, json.dumps(payload).encode()), topic)
        payload = mutate(rng, payload)


@fuzz
@given(rngs, st.binary(max_size=60))
def test_fuzz_stored_settings(store, rng, junk):
    r = rng.random()
    text = junk if r < 0.2 else json.dumps(mutate(rng, STORE) if r < 0.9 else value(rng)).encode()
    with open(store, "wb") as f:
        f.write(text)
    reason = commands(store).load()
    assert reason is None or type(reason) is str
