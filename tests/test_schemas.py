"""The JSON Schemas in docs/schemas/ against what the node really puts on
the wire.

The bundled recordings are replayed through the core (`citynode.board.replay`,
which builds `citynode.sense.core.Core` on the simulated hardware layer) into the
real `citynode.link.publisher.Publisher`, with an outbox in a temporary folder
and a fake MQTT client that is connected, takes every publish and records
`(topic, payload bytes, qos, retain)`. Every recorded payload is then
validated against the schema its topic suffix selects.

A small bus-level recording (version 2) written here brings the drivers'
own fault names (`not_ready`, `overflow`, `stuck`, `out_of_range`,
`bad_frames`, `no_answer`) through the emulated parts, the real drivers, the
core and the publisher, so they are checked on the wire too.

Besides the standard Draft 2020-12 validator, payloads are checked with a
strict one in which an `integer` must be a JSON integer: the standard
validator would also take `150.0` for an integer.
"""

import gzip
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from citynode.board import replay as core_replay
from citynode.link.outbox import Outbox
from citynode.link.publisher import Publisher
from host_tools.desk import rawbus
from host_tools.emulators.replay import parts
from tests.conftest import BUNDLED, ROOT, bundled

SCHEMA_DIR = ROOT / "docs" / "schemas"
SCHEMAS = ("bay", "water", "env", "event", "health", "ack")  # the last two: the node's, checked on the
# virtual board (tests/test_node_vboard.py)
SITE = "harbour"
NODE = "node-7"
PREFIX = "citynode/%s/%s/" % (SITE, NODE)
ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")

ALERTS = ("normal", "watch", "warning", "danger")
# Fault names that come from a driver, not from the core's ranging or flood logic.
DRIVER_FAULTS = {"no_answer", "bad_frames", "not_ready", "overflow", "stuck", "out_of_range"}


def _strict_int(_checker, instance):
    return isinstance(instance, int) and not isinstance(instance, bool)


StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_int),
)


def load_schema(name):
    return json.loads((SCHEMA_DIR / (name + ".schema.json")).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def checkers():
    """{name: (standard validator, strict validator)}."""
    out = {}
    for name in SCHEMAS:
        schema = load_schema(name)
        out[name] = (Draft202012Validator(schema), StrictValidator(schema))
    return out


def errors(checkers, name, payload):
    """Every validation error of `payload` against schema `name`, from both
    validators (the strict one adds only its integer check)."""
    std, strict = checkers[name]
    found = list(std.iter_errors(payload))
    return found or list(strict.iter_errors(payload))


def schema_for(topic):
    """The schema name for a full topic, or None for a topic without one."""
    assert topic.startswith(PREFIX), topic
    suffix = topic[len(PREFIX):]
    if suffix.startswith("bay/"):
        return "bay" if ID_RE.match(suffix[len("bay/"):]) else None
    return suffix if suffix in ("water", "env", "event") else None


# ---- the wire: the real publisher and a fake connected client


class RecordingClient:
    """Enough of `citynode.link.mqtt.MQTTClient` for the publisher: always
    connected, never full, and keeps what would go on the wire."""

    connected = True
    max_pending = 32

    def __init__(self):
        self.sent = []  # (topic, payload bytes, qos, retain)
        self.on_puback = None
        self._unacked = []

    def maintain(self):
        return True

    def pending(self):
        # A broker that acknowledges at once: the PUBACKs of what was
        # handed over arrive when the publisher next looks.
        acks, self._unacked = self._unacked, []
        for pid in acks:
            self.on_puback(pid)
        return 0

    def publish(self, topic, payload, qos=0, retain=False, dup=False):
        if isinstance(payload, str):
            payload = payload.encode()
        self.sent.append((topic, bytes(payload), qos, retain))
        if qos:
            self._unacked.append(len(self.sent))
        return len(self.sent) if qos else None


def wire_replay(path, outbox_dir):
    """Replay `path` through the core and the publisher; returns what the
    client was handed, in order."""
    client = RecordingClient()
    pub = Publisher(client, Outbox(str(outbox_dir)), SITE, NODE)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        core_replay.replay(str(path), pub.publish, stream=f, parts=parts)
    # Every message went through the outbox to the client, none lost or dropped.
    assert pub.lost == 0 and pub.outbox.dropped == 0
    assert pub.stored == pub.published == len(client.sent)
    return client.sent


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    """{recording name: [(topic, payload bytes, qos, retain), ...]} for the
    bundled recordings."""
    out = {}
    for name in BUNDLED:
        out[name] = wire_replay(bundled(name), tmp_path_factory.mktemp("outbox-" + name))
    return out


def label(name, payload):
    return "event:" + payload["kind"] if name == "event" else name


# ---- the schemas themselves


def _resolve(schema, node):
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/$defs/"), ref
    return _resolve(schema, schema["$defs"][ref[len("#/$defs/"):]])


def _object_schemas(schema):
    """The object schemas a payload is checked against: the file itself, or
    each branch of its `oneOf`."""
    if "oneOf" in schema:
        return [_resolve(schema, b) for b in schema["oneOf"]]
    return [schema]


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid(name):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://citynode.invalid/schemas/%s.schema.json" % name
    assert schema["title"] and schema["description"]
    assert schema["type"] == "object"
    for obj in _object_schemas(schema):
        assert obj["type"] == "object"
        assert obj["additionalProperties"] is False
        props = obj["properties"]
        assert set(obj["required"]) <= set(props)
        for key in ("ts", "seq"):
            assert key in obj["required"]
        for key, prop in props.items():
            assert "description" in prop or "description" in _resolve(schema, prop), key
            assert "type" in _resolve(schema, prop), key


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_examples_validate(name, checkers):
    schema = load_schema(name)
    assert schema["examples"]
    for example in schema["examples"]:
        assert not errors(checkers, name, example), example


def test_event_branches_are_told_apart_by_kind():
    schema = load_schema("event")
    kinds = [_resolve(schema, b)["properties"]["kind"]["const"] for b in schema["oneOf"]]
    assert sorted(kinds) == ["alert", "fault", "gap", "occupancy"]


def test_documented_examples_validate(checkers):
    """The JSON examples in docs/payloads.md, with the `seq` the publisher adds."""
    text = (ROOT / "docs" / "payloads.md").read_text(encoding="utf-8")
    seen = set()
    for block in re.findall(r"```json\n(.*?)\n```", text, re.S):
        payload = dict(json.loads(block), seq=1)
        if "kind" in payload:
            name = "event"
        elif "sound_mm_s" in payload:
            name = "env"
        elif "level_mm" in payload:
            name = "water"
        else:
            name = "bay"
        assert not errors(checkers, name, payload), payload
        seen.add(label(name, payload))
    assert seen == {"bay", "water", "env", "event:occupancy", "event:alert", "event:fault", "event:gap"}


# ---- what the node sends


@pytest.mark.parametrize("recording", BUNDLED)
def test_wire_messages_match_schemas(recording, wire, checkers):
    sent = wire[recording]
    assert sent
    for topic, body, _qos, _retain in sent:
        name = schema_for(topic)
        assert name is not None, "no schema for topic %s" % topic
        payload = json.loads(body.decode("utf-8"))
        found = errors(checkers, name, payload)
        assert not found, "%s %s: %s" % (topic, body, found[0].message)


@pytest.mark.parametrize("recording", BUNDLED)
def test_wire_framing(recording, wire):
    """What the schemas assume of the wire: compact JSON objects, `seq` from
    1 with no gaps, QoS 1, retained only for `bay/<id>`, and no topic (such
    as `status`, a plain string sent by the MQTT client) without a schema."""
    sent = wire[recording]
    for i, (topic, body, qos, retain) in enumerate(sent):
        payload = json.loads(body)
        assert isinstance(payload, dict)
        assert body == json.dumps(payload, separators=(",", ":")).encode()
        assert payload["seq"] == i + 1
        assert qos == 1
        assert retain == (schema_for(topic) == "bay")


def test_every_schema_exercised(wire, checkers):
    counts = {}
    water_faults = set()
    water_states = set()
    water_air = set()
    for sent in wire.values():
        for topic, body, _qos, _retain in sent:
            name = schema_for(topic)
            payload = json.loads(body)
            key = label(name, payload)
            counts[key] = counts.get(key, 0) + 1
            if name == "water":
                water_states.add(payload["state"])
                if "fault" in payload:
                    water_faults.add(payload["fault"])
                water_air.add(payload.get("air"))
    kinds = {"bay", "water", "env", "event:occupancy", "event:alert", "event:fault", "event:gap"}
    for key in kinds:
        assert counts.get(key, 0) > 0, "no %s message in the bundled recordings" % key
    assert set(counts) == kinds
    assert water_faults  # the optional `fault` of `water` is exercised too
    assert water_states == {"clear", "pending", "obstructed"}
    assert "held" in water_air  # and the optional `air` (street-faults: a failing BME280)


def test_alert_events_cover_every_level(wire):
    seen = set()
    for topic, body, _qos, _retain in wire["flood-event"]:
        payload = json.loads(body)
        if schema_for(topic) == "event" and payload["kind"] == "alert":
            seen.update((payload["alert"], payload["was"]))
    assert seen == set(ALERTS)


def test_recorded_driver_fault_is_a_plain_string(wire, checkers):
    """parking-day's `fault` line (bay-04, `no_answer`) reaches the wire as
    the driver's name, a plain JSON string."""
    faults = []
    for topic, body, _qos, _retain in wire["parking-day"]:
        payload = json.loads(body)
        if schema_for(topic) == "event" and payload["kind"] == "fault":
            faults.append((payload, body))
    assert faults
    for payload, body in faults:
        assert payload["fault"] == "no_answer"
        assert b'"fault":"no_answer"' in body
        assert not errors(checkers, "event", payload)


# ---- driver faults through a bus-level recording

START = 1783987200
BME_GOOD = [516753, 412839, 32751]  # 24.1 °C, 100 900 Pa, 70.2 %RH with rawbus.CALIBRATION
BME_HOT = [1000000, 412839, 32751]  # far above 85 °C: the driver's `out_of_range`
MAG = [2497, 212, 5040]


def _mag(i, status=0x01):
    regs = rawbus.qmc5883l_registers([MAG[0] + i % 3, MAG[1] - i % 2, MAG[2]])
    regs[6] = status
    return regs


def bus_level_recording(path):
    """Ten minutes of a node with a water sensor (A02YYUW, distances), a
    magnetometer bay (QMC5883L registers) and a BME280 (ADC words), whose
    drivers report faults: the bay's part is not ready, then overflows, then
    repeats itself; the BME280 reads out of range for four minutes; the
    sonar sends bad frames for over two minutes and later stops answering for
    40 s, too short for a fault event."""
    header = {
        "format": "citynode-recording", "version": 2, "node": NODE, "board": "esp32-devkitc",
        "start": START,
        "sensors": [
            {"id": "street", "type": "water", "driver": "a02yyuw", "pings": 5, "mount_mm": 3500},
            {"id": "bay-09", "type": "bay_magnetic", "driver": "qmc5883l", "period_s": 1},
            {"id": "env", "type": "env", "driver": "bme280", "period_s": 60},
        ],
        "bus": {
            "env": {"part": "bme280", "calibration": rawbus.CALIBRATION},
            "bay-09": {"part": "qmc5883l", "range_gauss": 2},
        },
    }
    lines = [header]
    for s in range(600):
        t = s * 1000
        if s % 10 == 0:
            bme = list(BME_HOT if 60 <= s < 300 else BME_GOOD)
            bme[0] += 40 * (s // 10 % 7)  # a slightly different reading each time: never `stuck`
            lines.append({"t": t, "s": "env", "bme280": bme})
            if 20 <= s < 160:
                lines.append({"t": t, "s": "street", "fault": "bad_frames"})
            elif 400 <= s < 440:
                lines.append({"t": t, "s": "street", "fault": "no_answer"})
            else:
                lines.append({"t": t, "s": "street", "distance_mm": [3500, 3499, 3501, 3500, 3500]})
        if 15 <= s < 51:
            regs = _mag(s, status=0x00)  # no DRDY: `not_ready`
        elif 56 <= s < 90:
            regs = _mag(s, status=0x03)  # OVL: `overflow`
        elif 96 <= s < 160:
            regs = _mag(0)  # the same bytes over and over: `stuck` from the 20th
        else:
            regs = _mag(s)
        lines.append({"t": t, "s": "bay-09", "qmc5883l": regs})
    with open(path, "w") as f:
        for rec in lines:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    return path


@pytest.fixture(scope="module")
def bus_wire(tmp_path_factory):
    d = tmp_path_factory.mktemp("bus-level")
    return wire_replay(bus_level_recording(d / "bus-faults.jsonl"), d / "outbox")


def test_bus_level_messages_match_schemas(bus_wire, checkers):
    kinds = set()
    for topic, body, _qos, _retain in bus_wire:
        name = schema_for(topic)
        assert name is not None, topic
        payload = json.loads(body)
        found = errors(checkers, name, payload)
        assert not found, "%s %s: %s" % (topic, body, found[0].message)
        kinds.add(label(name, payload))
    assert {"bay", "water", "env", "event:fault"} <= kinds


def test_driver_fault_names_are_plain_strings(bus_wire, checkers):
    """Each driver's fault name is passed on as the driver gave it: raised
    and cleared under the same name in fault events, and in the `water`
    message of every faulted sonar reading."""
    raised = {}
    cleared = {}
    water_faults = set()
    for topic, body, _qos, _retain in bus_wire:
        payload = json.loads(body)
        name = schema_for(topic)
        if name == "event" and payload["kind"] == "fault":
            assert isinstance(payload["fault"], str)
            assert b'"fault":"%s"' % payload["fault"].encode() in body
            (raised if payload["active"] else cleared).setdefault(payload["sensor"], []).append(
                payload["fault"])
        elif name == "water" and "fault" in payload:
            assert isinstance(payload["fault"], str)
            water_faults.add(payload["fault"])
    assert raised == {"bay-09": ["not_ready", "overflow", "stuck"], "env": ["out_of_range"],
                      "street": ["bad_frames"]}
    assert cleared == raised
    assert water_faults == {"bad_frames", "no_answer"}
    seen = {f for names in raised.values() for f in names} | water_faults
    assert seen == DRIVER_FAULTS


@pytest.mark.parametrize("fault", sorted(DRIVER_FAULTS | {"bad_calibration", "view_obstructed", "x"}))
def test_any_fault_name_string_validates(fault, checkers):
    event = {"kind": "fault", "sensor": "bay-04", "fault": fault, "active": True, "ts": START, "seq": 3}
    water = {"sensor": "street", "level_mm": 0, "rate_mm_min": 0, "alert": "normal", "state": "clear",
             "fault": fault, "ts": START, "seq": 4}
    assert not errors(checkers, "event", event)
    assert not errors(checkers, "water", water)


# ---- payloads that must fail

GOOD = {
    "bay": {"state": "occupied", "ts": 1783994358, "seq": 7},
    "water": {"sensor": "street", "level_mm": 150, "rate_mm_min": 4, "alert": "warning",
              "state": "clear", "ts": 1784048780, "seq": 8},
    "env": {"temp_c": 18.4, "humidity_pct": 62.5, "pressure_pa": 101210, "sound_mm_s": 342992,
            "ts": 1783987200, "seq": 9},
    "occupancy": {"kind": "occupancy", "sensor": "bay-02", "state": "free", "ts": 1783994358, "seq": 10},
    "alert": {"kind": "alert", "sensor": "street", "alert": "warning", "was": "watch", "level_mm": 150,
              "rate_mm_min": 4, "ts": 1784048780, "seq": 11},
    "fault": {"kind": "fault", "sensor": "bay-04", "fault": "no_answer", "active": True,
              "ts": 1784038530, "seq": 12},
}
SCHEMA_OF = {"bay": "bay", "water": "water", "env": "env", "occupancy": "event", "alert": "event",
             "fault": "event"}


_DROP = object()


def _variant(case, **changes):
    payload = dict(GOOD[case])
    for key, value in changes.items():
        if value is _DROP:
            del payload[key]
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_payloads_validate(case, checkers):
    assert not errors(checkers, SCHEMA_OF[case], GOOD[case])


WRONG_TYPE = [
    ("bay", "state", True),
    ("bay", "ts", "1783994358"),
    ("water", "level_mm", "150"),
    ("water", "level_mm", 150.5),
    ("water", "rate_mm_min", None),
    ("water", "sensor", 3),
    ("water", "fault", 1),
    ("env", "temp_c", "18.4"),
    ("env", "pressure_pa", 101210.5),
    ("env", "sound_mm_s", [342992]),
    ("occupancy", "state", 1),
    ("alert", "level_mm", "150"),
    ("alert", "was", None),
    ("fault", "active", "true"),
    ("fault", "active", 1),
    ("fault", "fault", 7),
    ("fault", "ts", 1.5),
    ("fault", "seq", "12"),
]


@pytest.mark.parametrize(("case", "key", "value"), WRONG_TYPE)
def test_wrong_type_fails(case, key, value, checkers):
    assert errors(checkers, SCHEMA_OF[case], _variant(case, **{key: value}))


@pytest.mark.parametrize(("case", "key"), [(c, k) for c in sorted(GOOD) for k in GOOD[c]])
def test_missing_field_fails(case, key, checkers):
    assert errors(checkers, SCHEMA_OF[case], _variant(case, **{key: _DROP}))


@pytest.mark.parametrize("case", sorted(GOOD))
def test_extra_field_fails(case, checkers):
    assert errors(checkers, SCHEMA_OF[case], _variant(case, extra=1))


def test_field_of_another_event_kind_fails(checkers):
    assert errors(checkers, "event", _variant("occupancy", active=True))
    assert errors(checkers, "event", _variant("fault", state="free"))
    assert errors(checkers, "event", _variant("alert", fault="no_echo"))
    assert errors(checkers, "bay", _variant("bay", sensor="bay-02"))  # the id is in the topic


@pytest.mark.parametrize("name", ["flood", "Warning", "alert", "", "critical"])
def test_unknown_alert_name_fails(name, checkers):
    assert errors(checkers, "water", _variant("water", alert=name))
    assert errors(checkers, "event", _variant("alert", alert=name))
    assert errors(checkers, "event", _variant("alert", was=name))


@pytest.mark.parametrize(("case", "changes"), [
    ("bay", {"state": "parked"}),
    ("occupancy", {"state": "unknown"}),
    ("water", {"state": "blocked"}),
    ("occupancy", {"kind": "presence"}),
    ("alert", {"kind": "fault"}),
    ("bay", {"ts": -1}),
    ("water", {"seq": 0}),
    ("fault", {"seq": -5}),
    ("water", {"sensor": "street/1"}),
    ("fault", {"sensor": ""}),
    ("occupancy", {"sensor": "bay 02"}),
])
def test_out_of_range_value_fails(case, changes, checkers):
    assert errors(checkers, SCHEMA_OF[case], _variant(case, **changes))


def test_event_without_kind_fails(checkers):
    assert errors(checkers, "event", _variant("fault", kind=_DROP))


def test_integer_written_as_float_fails_strict_check(checkers):
    """The standard validator takes 150.0 for an integer; the node writes
    integers as JSON integers, which the strict check holds it to."""
    payload = _variant("water", level_mm=150.0)
    std, strict = checkers["water"]
    assert std.is_valid(payload)
    assert not strict.is_valid(payload)
    with pytest.raises(ValidationError):
        strict.validate(payload)


def test_schema_files_are_the_expected_set():
    assert sorted(p.name for p in Path(SCHEMA_DIR).glob("*.schema.json")) == sorted(
        n + ".schema.json" for n in SCHEMAS)
