from citynode.config import check_sensors
from citynode.core import Core
from citynode.ranging import half_speed_q16, speed_mm_s
from citynode.ticks import Clock
from tests.core.helpers import Collect, echo_for_mm

START = 1783987200

SENSORS = [
    {"id": "bay-01", "type": "bay_ultrasonic", "driver": "jsn-sr04t", "empty_mm": 2600},
    {"id": "bay-03", "type": "bay_magnetic", "lsb_per_ut": 120},
    {"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500},
    {"id": "env", "type": "env", "period_s": 60},
]


def make():
    out = Collect()
    return Core(SENSORS, Clock(START, 0), out), out


def test_every_sensor_is_due_at_once_then_on_its_period():
    core, _ = make()
    assert core.due_at["bay-01"] is None
    core.feed("bay-01", 5000, {"echo_us": [echo_for_mm(2600)] * 3})
    assert core.due_at["bay-01"] == 6000
    core.feed("env", 5000, {"temp_c": 20.0, "pressure_pa": 101325, "humidity_pct": 50.0})
    assert core.due_at["env"] == 65000


def test_the_water_schedule_comes_from_the_flood_logic():
    core, _ = make()
    core.feed("street", 0, {"echo_us": [echo_for_mm(3500)] * 7})
    assert core.due_at["street"] == 10000


def test_env_readings_set_the_speed_of_sound_and_are_published():
    core, out = make()
    core.feed("env", 0, {"temp_c": 35.5, "pressure_pa": 100800.4, "humidity_pct": 62.5})
    assert core.speed_mm_s == speed_mm_s(3550, 625, 100800)
    assert out.messages[-1][1] == "env"
    p = out.messages[-1][2]
    assert p["temp_c"] == 35.5 and p["humidity_pct"] == 62.5 and p["pressure_pa"] == 100800
    assert p["ts"] == START


def test_a_hot_day_does_not_read_as_water_once_compensated():
    core, out = make()
    core.feed("env", 0, {"temp_c": 40.0, "pressure_pa": 101325, "humidity_pct": 30.0})
    hot = half_speed_q16(speed_mm_s(4000, 300, 101325))
    for i in range(3):
        core.feed("street", i * 10000, {"echo_us": [echo_for_mm(3500, hot)] * 7})
    water = [p for t, topic, p in out.messages if topic == "water"]
    assert water[-1]["level_mm"] == 0
    assert water[-1]["alert"] == "normal"


def test_an_occupancy_change_is_an_event_and_a_retained_bay_state():
    core, out = make()
    for s in range(10):
        mm = 2600 if s < 3 else 1200
        core.feed("bay-01", s * 1000, {"echo_us": [echo_for_mm(mm)] * 3})
    topics = [(topic, p.get("state")) for t, topic, p in out.messages]
    assert ("event", "occupied") in topics
    assert topics[-1] == ("bay/bay-01", "occupied")
    ev = out.events("occupancy")[0]
    assert ev == {"kind": "occupancy", "sensor": "bay-01", "state": "occupied", "ts": START + 6}


def test_a_magnetic_bay_publishes_its_state_once_calibrated():
    core, out = make()
    for s in range(12):
        core.feed("bay-03", s * 1000, {"mag": [2400, 120, 5160]})
    assert [(topic, p["state"]) for t, topic, p in out.messages] == [("bay/bay-03", "free")]


def test_driver_faults_reach_the_detector():
    core, out = make()
    for s in range(12):
        core.feed("bay-03", s * 1000, {"mag": [2400, 120, 5160]})
    for s in range(12, 50):
        core.feed("bay-03", s * 1000, {"fault": "no_answer"})
    assert [(e["fault"], e["active"]) for e in out.events("fault")] == [("no_answer", True)]


def test_recalibrate_reaches_the_bay():
    core, _ = make()
    for s in range(12):
        core.feed("bay-03", s * 1000, {"mag": [2400, 120, 5160]})
    core.recalibrate("bay-03")
    assert core.detectors["bay-03"].base is None


def test_an_ultrasonic_bay_with_a_known_floor_announces_its_state_at_once():
    core, out = make()
    core.feed("bay-01", 0, {"echo_us": [echo_for_mm(2600)] * 3})
    assert [(topic, p["state"]) for t, topic, p in out.messages] == [("bay/bay-01", "free")]


def test_fault_lines_reach_every_kind_of_sensor():
    core, out = make()
    for s in range(0, 400, 10):
        core.feed("bay-01", s * 1000, {"fault": "uart_silent"})
        core.feed("street", s * 1000, {"fault": "uart_silent"})
    got = sorted((e["sensor"], e["fault"], e["active"]) for e in out.events("fault"))
    assert got == [("bay-01", "uart_silent", True), ("street", "uart_silent", True)]


def test_a_dead_bme280_is_reported_and_the_last_good_speed_kept():
    core, out = make()
    core.feed("env", 0, {"temp_c": 30.0, "pressure_pa": 101325, "humidity_pct": 40.0})
    speed = core.speed_mm_s
    for i in range(1, 6):
        core.feed("env", i * 60000, {"fault": "no_answer"})
    assert core.speed_mm_s == speed
    assert [(e["sensor"], e["fault"], e["active"]) for e in out.events("fault")] == [
        ("env", "no_answer", True)]


def test_a_water_payload_names_the_fault_of_a_failed_burst():
    core, out = make()
    for i in range(3):
        core.feed("street", i * 10000, {"echo_us": [echo_for_mm(3500, core.q16)] * 7})
    core.feed("street", 30000, {"echo_us": [0] * 7})
    p = out.messages[-1][2]
    assert p["fault"] == "no_echo" and p["level_mm"] == 0


def check_refused(entries, words):
    try:
        check_sensors(entries)
    except ValueError as e:
        assert words in str(e), str(e)
    else:
        raise AssertionError("accepted %r" % (entries,))


def test_sensor_entries_are_checked_field_by_field():
    check_refused([{"id": "x", "type": "radar"}], "unknown type radar")
    check_refused([{"id": "x", "type": "water", "driver": "lidar"}], "unknown ranging driver lidar")
    check_refused([{"id": "b", "type": "bay_magnetic", "dwell_on": 3}], "unknown field 'dwell_on' for sensor")
    check_refused([{"id": "b", "type": "bay_magnetic", "period_s": "1"}], "field 'period_s' must be a number")
    check_refused([{"id": "b", "type": "bay_magnetic", "period_s": True}], "'period_s' must be a number")
    check_refused([{"id": "b", "type": "bay_magnetic", "enter_ut": -2}], "'enter_ut' must be 0 or more")
    check_refused([{"id": "w", "type": "water", "thresholds_mm": [50, 150]}], "'thresholds_mm' must be 3")
    check_refused([{"id": "w", "type": "water", "thresholds_mm": [50, 40, 300]}], "3 rising integers")
    check_refused([{"id": "w", "type": "water", "fast_s": 0}], "field 'fast_s' must be above 0")
    check_refused([{"id": "w", "type": "water", "period_s": 10}], "unknown field 'period_s'")
    check_refused([{"id": "b", "type": "bay_magnetic", "lsb_per_ut": 0}], "'lsb_per_ut' must be above 0")
    check_refused([{"id": "e", "type": "env", "period_s": float("nan")}], "'period_s' must be a number")
    check_refused([{"id": "bay/1", "type": "env"}], "becomes an MQTT topic level")
    check_refused([{"id": "", "type": "env"}], "sensor id")
    check_refused([SENSORS[3], SENSORS[3]], "sensor env: defined twice")


def test_the_bundled_kinds_of_sensor_list_pass_the_checks():
    check_sensors(SENSORS)


def test_the_bme280_is_read_with_every_fast_water_burst_and_published_each_minute():
    core, out = make()
    air = {"temp_c": 25.0, "pressure_pa": 101325, "humidity_pct": 50.0}
    core.feed("env", 0, air)
    assert core.due_at["env"] == 60000
    core.feed("street", 0, {"echo_us": [echo_for_mm(3500, core.q16)] * 7})
    assert core.due_at["street"] == 10000 and core.due_at["env"] == 10000
    for t in range(10000, 130000, 10000):
        core.feed("env", t, air)
    sent = [t for t, topic, p in out.messages if topic == "env"]
    assert sent == [0, 60000, 120000]
