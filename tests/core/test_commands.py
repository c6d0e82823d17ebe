import binascii
import json
import os

from citynode.config import check_sensors
from citynode.link.commands import Commands
from citynode.sense.core import Core
from citynode.ticks import Clock
from tests.core.helpers import Collect, echo_for_mm, exists, fresh_path, remove_files

SENSORS = [
    {"id": "bay-01", "type": "bay_ultrasonic", "driver": "jsn-sr04t", "empty_mm": 2600},
    {"id": "bay-03", "type": "bay_magnetic", "lsb_per_ut": 120},
    {"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500},
    {"id": "env", "type": "env", "period_s": 60},
]

def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _read_json(path):
    with open(path) as f:
        return json.loads(f.read())


def _core():
    check_sensors(SENSORS)
    return Core(SENSORS, Clock(0, 0), Collect())


def _settings(core):
    """Everything a command may change, in a form that compares by value."""
    water = core.detectors["street"]
    periods = {}
    for sid in core.period_ms:
        periods[sid] = core.period_ms[sid]
    return {
        "thresholds": tuple(water.thresholds),
        "hyst": water.hyst_mm,
        "fast": water.fast_ms,
        "slow": water.slow_ms,
        "periods": periods,
        "bay-01": core.detectors["bay-01"].base_q8,
        "bay-03": core.detectors["bay-03"].base,
    }


def _cmd(commands, name, payload):
    data = payload if payload is None or type(payload) is bytes else json.dumps(payload).encode()
    return commands.handle("cmd/" + name, data)


class _Setup:
    """A core with one sensor of each type, its Commands and a store path."""

    def __init__(self):
        self.core = _core()
        self.path = fresh_path("commands")
        self.commands = Commands(self.core, self.path)


def _run(check):
    s = _Setup()
    try:
        check(s)
    finally:
        remove_files(s.path)


def _rejected(s, name, payload, reason_part):
    """Send a command that must be rejected; check the ack and that nothing changed."""
    before = _settings(s.core)
    stored = exists(s.path)
    ack = _cmd(s.commands, name, payload)
    assert ack["ok"] is False, ack
    assert ack["cmd"] == name
    assert reason_part in ack["reason"], ack
    assert _settings(s.core) == before
    assert exists(s.path) == stored
    assert s.commands.reboot_requested is False
    return ack


# -- success paths -------------------------------------------------------------


def test_set_thresholds_applies_and_echoes_the_id():
    def check(s):
        ack = _cmd(s.commands, "set_thresholds",
                   {"id": "op-7", "sensor": "street", "thresholds_mm": [40, 120, 250], "hysteresis_mm": 10})
        assert ack == {"cmd": "set_thresholds", "id": "op-7", "ok": True}
        water = s.core.detectors["street"]
        assert tuple(water.thresholds) == (40, 120, 250)
        assert water.hyst_mm == 10
    _run(check)


def test_set_thresholds_without_hysteresis_keeps_it():
    def check(s):
        ack = _cmd(s.commands, "set_thresholds", {"sensor": "street", "thresholds_mm": [60, 160, 320]})
        assert ack["ok"] is True and ack["id"] is None
        assert tuple(s.core.detectors["street"].thresholds) == (60, 160, 320)
        assert s.core.detectors["street"].hyst_mm == 20
    _run(check)


def test_new_thresholds_drive_the_alerts():
    def check(s):
        assert _cmd(s.commands, "set_thresholds", {"sensor": "street", "thresholds_mm": [30, 100, 200]})["ok"]
        out = s.core._publish
        for i in range(3):
            s.core.feed("street", i * 10000, {"echo_us": [echo_for_mm(3500 - 40)] * 7})
        alerts = out.events("alert")
        assert alerts and alerts[-1]["alert"] == "watch"
    _run(check)


def test_set_interval_of_bays_and_env():
    def check(s):
        assert _cmd(s.commands, "set_interval", {"sensor": "bay-01", "period_s": 2})["ok"]
        assert _cmd(s.commands, "set_interval", {"sensor": "bay-03", "period_s": 0.5})["ok"]
        assert _cmd(s.commands, "set_interval", {"sensor": "env", "period_s": 120})["ok"]
        assert s.core.period_ms["bay-01"] == 2000
        assert s.core.period_ms["bay-03"] == 500
        assert s.core.period_ms["env"] == 120000
        s.core.feed("bay-01", 1000, {"echo_us": [echo_for_mm(2600)] * 3})
        assert s.core.due_at["bay-01"] == 3000
    _run(check)


def test_set_interval_of_a_water_sensor():
    def check(s):
        assert _cmd(s.commands, "set_interval", {"sensor": "street", "fast_s": 5, "slow_s": 30})["ok"]
        water = s.core.detectors["street"]
        assert water.fast_ms == 5000 and water.slow_ms == 30000
        assert _cmd(s.commands, "set_interval", {"sensor": "street", "slow_s": 120})["ok"]
        assert water.fast_ms == 5000 and water.slow_ms == 120000
    _run(check)


def test_recalibrate_an_ultrasonic_bay():
    def check(s):
        s.core.feed("bay-01", 0, {"echo_us": [echo_for_mm(2600)] * 3})
        assert s.core.detectors["bay-01"].ready
        ack = _cmd(s.commands, "recalibrate", {"sensor": "bay-01", "id": "r1"})
        assert ack == {"cmd": "recalibrate", "id": "r1", "ok": True}
        assert not s.core.detectors["bay-01"].ready
        assert not exists(s.path)  # an action, not a setting
    _run(check)


def test_recalibrate_a_magnetic_bay():
    def check(s):
        for i in range(12):
            s.core.feed("bay-03", i * 1000, {"mag": [100, 200, 300]})
        assert s.core.detectors["bay-03"].ready
        assert _cmd(s.commands, "recalibrate", {"sensor": "bay-03"})["ok"]
        assert not s.core.detectors["bay-03"].ready
    _run(check)


def test_reboot_sets_the_flag():
    def check(s):
        assert s.commands.reboot_requested is False
        ack = _cmd(s.commands, "reboot", {"id": "boot-1"})
        assert ack == {"cmd": "reboot", "id": "boot-1", "ok": True}
        assert s.commands.reboot_requested is True
    _run(check)


def test_status_lists_sensors_with_their_settings():
    def check(s):
        assert _cmd(s.commands, "set_interval", {"sensor": "bay-03", "period_s": 1.5})["ok"]
        ack = _cmd(s.commands, "status", {})
        assert ack["ok"] is True and ack["cmd"] == "status"
        st = ack["status"]
        assert [e["id"] for e in st["sensors"]] == ["bay-01", "bay-03", "env", "street"]
        by_id = {}
        for e in st["sensors"]:
            by_id[e["id"]] = e
        assert by_id["bay-01"] == {"id": "bay-01", "type": "bay_ultrasonic", "period_s": 1}
        assert by_id["bay-03"] == {"id": "bay-03", "type": "bay_magnetic", "period_s": 1.5}
        assert by_id["env"] == {"id": "env", "type": "env", "period_s": 60}
        assert by_id["street"] == {"id": "street", "type": "water", "thresholds_mm": [50, 150, 300],
                                   "hysteresis_mm": 20, "fast_s": 10, "slow_s": 60}
        assert st["reboot_requested"] is False
        json.dumps(ack)  # serialisable as it stands
    _run(check)


def test_a_str_payload_is_taken_like_bytes():
    def check(s):
        ack = s.commands.handle("cmd/set_interval", '{"sensor": "env", "period_s": 30}')
        assert ack["ok"] and s.core.period_ms["env"] == 30000
    _run(check)


# -- rejected commands change nothing -----------------------------------------------


def test_a_64_kb_payload_is_refused_unparsed():
    def check(s):
        ack = _rejected(s, "reboot", b"{" * 65536, "payload too large")
        assert ack["reason"] == "payload too large (65536 bytes, limit 1024)"
        assert ack["id"] is None
        skipped = _rejected(s, "reboot", None, "payload too large")  # what the MQTT client could not keep
        assert skipped["reason"] == "payload too large (over the MQTT client's packet limit, limit 1024)"
    _run(check)


def test_bad_json_and_bad_utf8():
    def check(s):
        assert _rejected(s, "reboot", b"{not json", "not JSON")["reason"] == "not JSON"
        assert _rejected(s, "reboot", b"", "not JSON")["reason"] == "not JSON"
        assert _rejected(s, "status", b"[" * 512 + b"]" * 512, "")["reason"] in (
            "payload nested too deeply to parse", "payload must be a JSON object")
        assert _rejected(s, "reboot", b'{"id": "\xff"}', "not UTF-8")["reason"] == "not UTF-8"
    _run(check)


def test_a_payload_that_is_not_an_object():
    def check(s):
        for payload in (b"[1, 2]", b'"reboot"', b"3", b"null", b"true"):
            _rejected(s, "reboot", payload, "JSON object")
    _run(check)


def test_unknown_command_and_topic():
    def check(s):
        ack = _rejected(s, "format_flash", {"id": "x1"}, "unknown command 'format_flash'")
        assert ack["id"] == "x1"
        ack = s.commands.handle("status", b"{}")
        assert ack["ok"] is False and "not a command topic" in ack["reason"]
    _run(check)


def test_a_bad_id():
    def check(s):
        _rejected(s, "reboot", {"id": 7}, "'id'")
        _rejected(s, "reboot", {"id": "x" * 33}, "'id'")
        _rejected(s, "reboot", {"id": True}, "'id'")
    _run(check)


def test_unknown_sensor():
    def check(s):
        ack = _rejected(s, "set_thresholds", {"id": "a", "sensor": "river", "thresholds_mm": [1, 2, 3]},
                        "unknown sensor 'river'")
        assert ack["id"] == "a"
        _rejected(s, "set_interval", {"sensor": "bay-99", "period_s": 2}, "unknown sensor")
        _rejected(s, "recalibrate", {"sensor": "nope"}, "unknown sensor")
        _rejected(s, "recalibrate", {"sensor": 1}, "'sensor' must be a string")
    _run(check)


def test_wrong_type_of_sensor():
    def check(s):
        _rejected(s, "set_thresholds", {"sensor": "bay-01", "thresholds_mm": [10, 20, 30]}, "water sensor")
        _rejected(s, "set_thresholds", {"sensor": "env", "thresholds_mm": [10, 20, 30]}, "is env")
        _rejected(s, "recalibrate", {"sensor": "street"}, "parking bay")
        _rejected(s, "recalibrate", {"sensor": "env"}, "parking bay")
        _rejected(s, "set_interval", {"sensor": "street", "period_s": 5}, "has no period_s")
        _rejected(s, "set_interval", {"sensor": "bay-01", "fast_s": 5}, "has no fast_s")
        _rejected(s, "set_interval", {"sensor": "env", "slow_s": 5}, "has no slow_s")
    _run(check)


def test_missing_and_extra_fields():
    def check(s):
        _rejected(s, "set_thresholds", {"sensor": "street"}, "missing field 'thresholds_mm'")
        _rejected(s, "set_thresholds", {"thresholds_mm": [10, 20, 30]}, "missing field 'sensor'")
        _rejected(s, "recalibrate", {}, "missing field 'sensor'")
        _rejected(s, "set_interval", {"sensor": "bay-01"}, "nothing to set")
        _rejected(s, "set_thresholds", {"sensor": "street", "thresholds_mm": [10, 20, 30], "colour": "red"},
                  "unknown field 'colour'")
        _rejected(s, "reboot", {"now": True}, "unknown field 'now'")
        _rejected(s, "status", {"verbose": 1}, "unknown field 'verbose'")
        _rejected(s, "recalibrate", {"sensor": "bay-01", "period_s": 3}, "unknown field 'period_s'")
    _run(check)


def test_wrong_types():
    def check(s):
        for th in ("10,20,30", [10, 20], [10, 20, 30, 40], [10, 20.5, 30], [10, "20", 30], {"a": 1}, None):
            _rejected(s, "set_thresholds", {"sensor": "street", "thresholds_mm": th}, "'thresholds_mm'")
        for h in (5.0, "5", None, [5]):
            _rejected(s, "set_thresholds",
                      {"sensor": "street", "thresholds_mm": [10, 20, 30], "hysteresis_mm": h},
                      "'hysteresis_mm' must be an integer")
        for v in ("2", None, [2], {"s": 2}):
            _rejected(s, "set_interval", {"sensor": "bay-01", "period_s": v}, "'period_s' must be a number")
    _run(check)


def test_a_bool_is_not_a_number():
    def check(s):
        _rejected(s, "set_interval", {"sensor": "bay-01", "period_s": True}, "must be a number")
        _rejected(s, "set_interval", {"sensor": "street", "fast_s": True}, "must be a number")
        _rejected(s, "set_thresholds", {"sensor": "street", "thresholds_mm": [True, 20, 30]}, "integers")
        _rejected(s, "set_thresholds",
                  {"sensor": "street", "thresholds_mm": [10, 20, 30], "hysteresis_mm": False},
                  "must be an integer")
    _run(check)


def test_out_of_range_values():
    def check(s):
        for th in ([0, 20, 30], [-5, 20, 30], [30, 20, 40], [10, 10, 30], [10, 20, 900]):
            _rejected(s, "set_thresholds", {"sensor": "street", "thresholds_mm": th}, "'thresholds_mm'")
        _rejected(s, "set_thresholds",
                  {"sensor": "street", "thresholds_mm": [10, 20, 30], "hysteresis_mm": -1},
                  "'hysteresis_mm'")
        _rejected(s, "set_thresholds",
                  {"sensor": "street", "thresholds_mm": [10, 20, 30], "hysteresis_mm": 10},
                  "below the watch threshold")
        for v in (0, -1, 0.01, 86401):
            _rejected(s, "set_interval", {"sensor": "bay-01", "period_s": v}, "'period_s'")
        for v in (b"1e400", b"-1e400"):  # infinite once parsed
            _rejected(s, "set_interval", b'{"sensor": "bay-01", "period_s": ' + v + b"}", "'period_s'")
        _rejected(s, "set_interval", {"sensor": "street", "slow_s": 3601}, "'slow_s'")
        _rejected(s, "set_interval", {"sensor": "street", "fast_s": 90}, "must not exceed slow_s")
        _rejected(s, "set_interval", {"sensor": "street", "fast_s": 20, "slow_s": 15},
                  "must not exceed slow_s")
    _run(check)


def test_a_partly_valid_command_changes_nothing():
    def check(s):
        # a valid fast_s beside an invalid slow_s: neither is applied
        _rejected(s, "set_interval", {"sensor": "street", "fast_s": 5, "slow_s": -1}, "'slow_s'")
        # valid thresholds beside a bad hysteresis: neither is applied
        _rejected(s, "set_thresholds",
                  {"sensor": "street", "thresholds_mm": [40, 80, 120], "hysteresis_mm": 50},
                  "'hysteresis_mm'")
    _run(check)


def test_a_store_that_cannot_be_written_rejects_the_command():
    core = _core()
    commands = Commands(core, "/tmp/citynode-no-such-dir-%s/settings.json"
                        % binascii.hexlify(os.urandom(4)).decode())
    before = _settings(core)
    ack = commands.handle("cmd/set_interval", b'{"sensor": "env", "period_s": 30}')
    assert ack["ok"] is False and "could not store" in ack["reason"]
    assert _settings(core) == before


def test_json_nested_too_deep_is_refused():
    core = _core()
    commands = Commands(core, fresh_path("commands"), max_bytes=8192)
    before = _settings(core)
    ack = commands.handle("cmd/status", b"[" * 3000 + b"]" * 3000)
    assert ack["ok"] is False and ack["reason"] == "payload nested too deeply to parse"
    assert _settings(core) == before


def test_max_bytes_is_configurable():
    core = _core()
    commands = Commands(core, fresh_path("commands"), max_bytes=16)
    ack = commands.handle("cmd/reboot", b'{"id": "abcdefghijkl"}')
    assert ack["reason"] == "payload too large (22 bytes, limit 16)"
    assert commands.handle("cmd/reboot", b"{}")["ok"]


# -- the store ----------------------------------------------------------------


def test_applied_settings_are_stored_and_reloaded():
    def check(s):
        assert _cmd(s.commands, "set_thresholds",
                    {"sensor": "street", "thresholds_mm": [40, 120, 250], "hysteresis_mm": 10})["ok"]
        assert _cmd(s.commands, "set_interval", {"sensor": "street", "fast_s": 5})["ok"]
        assert _cmd(s.commands, "set_interval", {"sensor": "bay-03", "period_s": 2.5})["ok"]
        assert _cmd(s.commands, "set_interval", {"sensor": "env", "period_s": 300})["ok"]
        assert not exists(s.path + ".tmp")
        doc = _read_json(s.path)
        assert doc["version"] == 1
        assert doc["sensors"]["street"] == {"thresholds_mm": [40, 120, 250], "hysteresis_mm": 10, "fast_s": 5}
        applied = _settings(s.core)

        fresh = _core()
        assert _settings(fresh) != applied
        assert Commands(fresh, s.path).load() is None
        assert _settings(fresh) == applied
    _run(check)


def test_a_rejected_command_leaves_the_store_as_it_was():
    def check(s):
        assert _cmd(s.commands, "set_interval", {"sensor": "env", "period_s": 90})["ok"]
        before = _read_json(s.path)
        _rejected(s, "set_interval", {"sensor": "env", "period_s": -3}, "'period_s'")
        assert _read_json(s.path) == before
    _run(check)


def test_no_store_yet_loads_nothing():
    def check(s):
        before = _settings(s.core)
        assert s.commands.load() is None
        assert _settings(s.core) == before
    _run(check)


def test_a_corrupt_store_is_ignored_with_a_reason():
    def check(s):
        before = _settings(s.core)
        for text in ("", "{\"version\": 1, \"sens", "[1, 2]", '{"version": 9, "sensors": {}}',
                     '{"version": 1, "sensors": []}', "\x00\x01garbage"):
            _write(s.path, text)
            reason = s.commands.load()
            assert type(reason) is str and "ignored" in reason, (text, reason)
            assert _settings(s.core) == before
    _run(check)


def test_stored_entries_that_no_longer_fit_are_skipped_alone():
    def check(s):
        before = _settings(s.core)
        _write(s.path, json.dumps({"version": 1, "sensors": {
            "gone": {"period_s": 5},
            "bay-01": {"thresholds_mm": [1, 2, 3]},
            "env": {"period_s": True},
            "street": {"fast_s": 7, "colour": "red"},
            "bay-03": {"period_s": 4},
        }}))
        reason = s.commands.load()
        assert "unknown sensor 'gone'" in reason
        assert "bay-01 (" in reason and "env (" in reason and "'colour'" in reason
        after = _settings(s.core)
        assert after["periods"]["bay-03"] == 4000
        assert after["periods"]["bay-01"] == before["periods"]["bay-01"]
        assert after["periods"]["env"] == before["periods"]["env"]
        assert after["fast"] == before["fast"]
        # a later command keeps the applied entry and drops the skipped ones
        assert _cmd(s.commands, "set_interval", {"sensor": "env", "period_s": 30})["ok"]
        assert _read_json(s.path)["sensors"] == {"bay-03": {"period_s": 4}, "env": {"period_s": 30}}
    _run(check)
