from citynode.config import check_sensors
from citynode.sense.core import Core
from citynode.sense.ranging import half_speed_q16, speed_mm_s
from citynode.ticks import MASK, Clock, add
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


# ---- silences the node cannot bridge, and air readings that cannot be air

STREET = [
    {"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500},
    {"id": "env", "type": "env", "period_s": 60},
]
AIR = {"temp_c": 20.0, "pressure_pa": 101325, "humidity_pct": 50.0}
HOUR = 3600000


def make_street():
    out = Collect()
    return Core(STREET, Clock(START, 0), out), out


def dry(core, t, mm=3500):
    core.feed("street", t, {"echo_us": [echo_for_mm(mm, core.q16)] * 7})


def air_at(t_c, p=101325, rh=50.0):
    return {"temp_c": t_c, "pressure_pa": p, "humidity_pct": rh}


def gaps(out):
    return [(e["sensor"], e["gap_s"], e["ts"]) for e in out.events("gap")]


def test_an_hour_without_samples_is_a_silence_every_sensor_hears_of():
    core, out = make_street()
    core.feed("env", 0, AIR)
    dry(core, 0)
    dry(core, 10000)
    assert gaps(out) == []
    t = 10000 + HOUR + 1000
    dry(core, t)
    assert gaps(out) == [("street", 3601, START + 3611), ("env", 3601, START + 3611)]
    assert [topic for _, topic, _ in out.messages[-3:]] == ["event", "event", "water"]  # the gap first
    assert core.due_at["env"] is None  # read again at once
    core.feed("env", t + 500, AIR)
    assert len(gaps(out)) == 2  # one silence, one event per sensor


def test_an_hour_exactly_is_no_silence():
    core, out = make_street()
    dry(core, 0)
    dry(core, HOUR)
    assert gaps(out) == []


def test_ticks_that_go_back_are_a_silence_of_unknown_length_and_time_never_runs_back():
    core, out = make_street()
    core.feed("env", 0, AIR)
    for i in range(1, 4):
        dry(core, i * 10000)
    dry(core, 5000)
    assert gaps(out) == [("street", None, START + 30), ("env", None, START + 30)]
    dry(core, 15000)
    assert out.messages[-1][2]["ts"] == START + 40


def test_a_silence_the_hardware_layer_reports_counts_in_full():
    core, out = make_street()
    core.feed("env", 0, AIR)
    dry(core, 0)
    dry(core, 10000)
    ten_days = 10 * 86400000
    t = ten_days & MASK  # the tick the board's clock shows after ten days
    core.silence(t, ten_days)
    assert [p.get("kind") for _, _, p in out.messages[-2:]] == ["gap", "gap"]  # sent at once
    core.feed("env", t, AIR)
    dry(core, t)
    assert gaps(out) == [("street", 864000, START + 864010), ("env", 864000, START + 864010)]
    assert [p["ts"] for _, topic, p in out.messages if topic == "water"][-1] == START + 864010
    dry(core, add(t, 10000))
    assert out.messages[-1][2]["ts"] == START + 864020


def test_one_sensor_silent_for_over_an_hour_alone_restarts_alone():
    core, out = make_street()
    dry(core, 0)
    for i in range(0, 80):
        core.feed("env", i * 60000, AIR)
    dry(core, 80 * 60000)
    assert gaps(out) == [("street", 4800, START + 4800)]


def test_a_long_period_schedule_is_not_a_silence():
    out = Collect()
    core = Core([{"id": "env", "type": "env", "period_s": 7200}], Clock(START, 0), out)
    for i in range(5):
        core.feed("env", i * 7200000, AIR)
    assert gaps(out) == []


def test_absurd_air_numbers_are_a_fault_never_a_crash():
    core, out = make_street()
    core.feed("env", 0, AIR)
    speed = core.speed_mm_s
    bad = [1e308, -1e308, float("nan"), float("inf"), -float("inf"), 10 ** 40, -146.0, 85.01, "20", None,
           True, [20.0]]
    t = 0
    for v in bad:
        t += 60000
        core.feed("env", t, air_at(v))
    for p in (1e308, float("nan"), 29999, 110001, 10 ** 30):
        t += 60000
        core.feed("env", t, air_at(20.0, p))
    for rh in (-0.1, 100.1, float("nan")):
        t += 60000
        core.feed("env", t, air_at(20.0, 101325, rh))
    core.feed("env", t + 60000, {"temp_c": 20.0})
    core.feed("env", t + 120000, {})
    core.feed("env", t + 180000, "garbage")
    core.feed("env", t + 240000, {"fault": 7})
    assert core.speed_mm_s == speed and core.air == (2000, 500, 101325)
    assert [(e["fault"], e["active"]) for e in out.events("fault")] == [("air_out_of_range", True)]
    core.feed("env", t + 300000, AIR)
    assert [(e["fault"], e["active"]) for e in out.events("fault")] == [
        ("air_out_of_range", True), ("air_out_of_range", False)]


def test_absurd_bursts_and_fields_are_a_fault_never_a_crash():
    core, out = make_street()
    core.feed("env", 0, AIR)
    for i in range(3):
        dry(core, i * 10000)
    t = 30000
    for sample in ({"echo_us": [1e308] * 7}, {"echo_us": [float("nan")] * 7}, {"echo_us": "x"},
                   {"echo_us": []}, {"echo_us": [None, 1, 2]}, {"echo_us": [10 ** 40] * 7},
                   {"distance_mm": [float("inf")]}, {}, None, 42, {"fault": None}):
        core.feed("street", t, sample)
        t += 10000
    water = [p for _, topic, p in out.messages if topic == "water"]
    assert water[-1]["level_mm"] == 0
    assert water[-1]["fault"] == "bad_sample"
    assert water[-6]["fault"] == "no_echo"  # a huge int is only an echo that never came back
    assert [(e["fault"], e["active"]) for e in out.events("fault")] == [("bad_sample", True)]


def test_absurd_magnetometer_counts_are_a_fault():
    core, out = make()
    for s in range(12):
        core.feed("bay-03", s * 1000, {"mag": [2400, 120, 5160]})
    for s in range(12, 50):
        core.feed("bay-03", s * 1000, {"mag": [1e308, float("nan"), 10 ** 40]})
    for s in range(50, 60):
        core.feed("bay-03", s * 1000, {"mag": [1, 2]})
    assert [(e["fault"], e["active"]) for e in out.events("fault")] == [("bad_sample", True)]


def held(out):
    return [p.get("air") for _, topic, p in out.messages if topic == "water"]


def test_a_jump_faster_than_air_changes_is_held_back_and_the_water_payload_says_so():
    core, out = make_street()
    core.feed("env", 0, air_at(20.0))
    dry(core, 0)
    dry(core, 10000)
    core.feed("env", 60000, air_at(24.0))  # 4 °C in a minute: more than 1 °C + 2 °C/min
    dry(core, 60000)
    assert core.air[0] == 2000 and held(out) == [None, "held"]
    core.feed("env", 120000, air_at(20.5))
    dry(core, 120000)
    assert core.air[0] == 2050 and held(out)[-1] is None
    core.feed("env", 180000, air_at(22.0))  # 1.5 °C in a minute: air does that
    assert core.air[0] == 2200


def test_pressure_that_jumps_is_held_back():
    core, _ = make_street()
    core.feed("env", 0, air_at(20.0, 101325))
    core.feed("env", 60000, air_at(20.0, 100800))  # 5 hPa in a minute
    assert core.air[2] == 101325
    core.feed("env", 120000, air_at(20.0, 101200))
    assert core.air[2] == 101200


def test_a_value_that_repeats_exactly_for_half_an_hour_is_stuck():
    core, out = make_street()
    core.feed("env", 0, air_at(20.0))
    for i in range(1, 40):
        core.feed("env", i * 60000, air_at(20.0))
    faults = out.events("fault")
    assert [(e["fault"], e["active"], e["ts"]) for e in faults] == [("air_stuck", True, START + 34 * 60)]
    core.feed("env", 40 * 60000, air_at(20.01))
    assert [(e["fault"], e["active"]) for e in out.events("fault")][-1] == ("air_stuck", False)


def dead_then_garbage(core, t0, minutes):
    """A BME280 failing at t0: -146 °C once, then -38 °C, 928 hPa, 100 %RH."""
    core.feed("env", t0, air_at(-146.0, 92800, 100.0))
    for i in range(1, minutes):
        core.feed("env", t0 + i * 60000, air_at(-38.0, 92800, 100.0))


def test_a_failing_bme280_never_becomes_the_air_and_the_level_holds():
    core, out = make_street()
    t = 0
    while t < 3 * HOUR:  # a good history first
        core.feed("env", t, air_at(15.0 + (t // 60000) % 3 * 0.1))
        t += 60000
    good = core.air
    assert out.events() == []
    del out.messages[:]  # the history's env messages: kept, they fill an ESP32-sized heap
    for i in range(6):
        dry(core, t + i * 60000)
    dead_then_garbage(core, t, 24 * 60)
    for i in range(6, 24 * 60, 10):
        dry(core, t + i * 60000)
    assert core.air == good
    water = [p for _, topic, p in out.messages if topic == "water"]
    assert {p["level_mm"] for p in water} == {0}
    assert {p.get("air") for p in water[6:]} == {"held"}
    # named after the reading that raised it, 180 s (`fault_after_s`) in
    assert [(e["fault"], e["active"]) for e in out.events("fault")] == [("air_far_from_history", True)]
    core.feed("env", t + 24 * HOUR, air_at(15.5))  # a new part: within the history
    assert core.air[0] == 1550
    assert [(e["fault"], e["active"]) for e in out.events("fault")][-1] == ("air_far_from_history", False)


def test_noisy_garbage_far_from_the_history_never_becomes_the_air():
    core, out = make_street()
    for i in range(200):
        core.feed("env", i * 60000, air_at(15.0 + (i % 5) * 0.05))
    for i in range(200, 600):
        core.feed("env", i * 60000, air_at(-38.0 + (i % 7) * 0.1, 92800 + (i % 3) * 10, 100.0))
    assert core.air[0] < 1600
    assert [e["fault"] for e in out.events("fault")] == ["air_far_from_history"]


def test_a_part_that_starts_with_garbage_does_not_become_the_history():
    core, out = make_street()
    for i in range(40):  # stuck from the start: taken at first, then found stuck
        core.feed("env", i * 60000, air_at(-38.0, 92800, 100.0))
    for i in range(40, 400):
        core.feed("env", i * 60000, air_at(18.0 + (i % 4) * 0.05))
    assert core.air[0] >= 1800 and core.air[2] == 101325


def test_no_air_reading_ever_is_the_default_and_the_water_payload_says_so():
    out = Collect()
    core = Core(STREET[:1], Clock(START, 0), out)
    for i in range(3):
        dry(core, i * 10000)
    assert held(out) == ["default", "default"]


def test_water_deeper_than_credible_is_published_at_the_limit_with_its_fault():
    core, out = make_street()
    core.feed("env", 0, AIR)
    t = 0
    for level in list(range(0, 900, 30)) + [900] * 6:  # 3 mm/s: a rise water can make
        dry(core, t, 3500 - level)
        t += 10000
    p = out.messages[-1][2]
    assert (p["level_mm"], p.get("fault")) == (800, "above_max")


def test_a_bay_quiet_for_a_week_still_stamps_its_next_event_right():
    core, out = make()
    t = 0
    for s in range(8 * 86400 // 60):  # a free bay read once a minute for eight days: nothing to publish
        mm = 2600 if s < 8 * 86400 // 60 - 10 else 1200
        core.feed("bay-01", t, {"echo_us": [echo_for_mm(mm)] * 3})
        t = add(t, 60000)
    assert out.events("occupancy")[0]["ts"] == START + (8 * 86400 // 60 - 9) * 60  # the second car reading
