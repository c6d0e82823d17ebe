"""The sensor-type registry (citynode.sensors): every type declares what
the rest of citynode reads of it, and a type added from outside the
package is checked, recorded and configured like the built-in ones."""

import json
import types

import pytest

from citynode import sensors
from citynode.board.recording import Reader, RecordingError
from citynode.config import check_sensor

DECLARED = ("NAME", "PARAMS", "POSITIVE", "DRIVER", "DRIVERS", "RANGED", "TOPIC", "SAMPLE", "TRUTH", "PART")


def tilt_type():
    """A made-up type: a tilt sensor on a lamp post, read over I2C."""
    m = types.ModuleType("tilt")
    m.NAME = "tilt"
    m.PARAMS = sensors.COMMON + ("period_s", "max_deg")
    m.POSITIVE = ("period_s",)
    m.DRIVER = "adxl345"
    m.DRIVERS = ("adxl345",)
    m.RANGED = False
    m.TOPIC = "tilt"
    m.SAMPLE = "tilt"
    m.TRUTH = None
    m.PART = None
    return m


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(sensors, "TYPES", list(sensors.TYPES))
    monkeypatch.setattr(sensors, "_OUTSIDE", {})
    return sensors


@pytest.mark.parametrize("name", sensors.TYPES)
def test_every_type_declares_what_is_read_of_it(name):
    t = sensors.get(name)
    missing = [k for k in DECLARED if not hasattr(t, k)]
    assert missing == []
    assert name == t.NAME
    assert set(sensors.COMMON) <= set(t.PARAMS)
    assert set(t.POSITIVE) <= set(t.PARAMS)
    assert t.DRIVER in t.DRIVERS
    check_sensor({"id": "x", "type": name})  # the defaults alone make a valid entry


def test_an_unknown_type_is_one_line_naming_the_types():
    types_listed = r"\(one of bay_magnetic, bay_ultrasonic, env, water\)$"
    with pytest.raises(ValueError, match="^unknown type radar " + types_listed):
        sensors.get("radar")
    assert not sensors.is_bay("radar")
    assert sensors.is_bay("bay_magnetic") and not sensors.is_bay("water")


def test_a_driver_the_type_has_not_is_refused():
    with pytest.raises(ValueError, match="^sensor b1: unknown driver bme280 for sensor type bay_magnetic "
                                         r"\(one of qmc5883l\)$"):
        check_sensor({"id": "b1", "type": "bay_magnetic", "driver": "bme280"})


def test_a_made_up_type_is_checked_and_read_like_the_others(registry, tmp_path):
    registry.register(tilt_type())
    assert "tilt" in registry.TYPES and registry.get("tilt").NAME == "tilt"
    check_sensor({"id": "pole-7", "type": "tilt", "max_deg": 5, "period_s": 10})
    with pytest.raises(ValueError, match="^sensor pole-7: unknown field 'level' for sensor type tilt$"):
        check_sensor({"id": "pole-7", "type": "tilt", "level": 5})
    with pytest.raises(ValueError, match="^sensor pole-7: field 'period_s' must be above 0$"):
        check_sensor({"id": "pole-7", "type": "tilt", "period_s": 0})
    with pytest.raises(ValueError, match="^sensor pole-7: unknown driver lis3dh for sensor type tilt"):
        check_sensor({"id": "pole-7", "type": "tilt", "driver": "lis3dh"})
    # a recording of it: its header is read, and it has no ground truth
    rec = tmp_path / "tilt.jsonl"
    header = {"format": "citynode-recording", "version": 1, "node": "n", "board": "b", "start": 0,
              "sensors": [{"id": "pole-7", "type": "tilt"}]}
    truth = {"t": 0, "truth": "pole-7", "occupied": True}
    rec.write_text(json.dumps(header) + "\n" + json.dumps(truth) + "\n")
    with Reader(str(rec)) as r:
        assert r.sensors == {"pole-7": "tilt"}
        with pytest.raises(RecordingError, match=":2: field 'truth': no ground truth is defined for tilt"):
            list(r)


def test_without_registering_the_type_is_unknown(registry):
    with pytest.raises(ValueError, match="^sensor pole-7: unknown type tilt"):
        check_sensor({"id": "pole-7", "type": "tilt"})
