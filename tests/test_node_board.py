"""The node on the board's hardware layer (citynode.board.hal_esp32), on the desk:
the drivers on the pins a board profile gives, an emulated ESP32
(host_tools.emulators.board: its parts, watchdog, Wi-Fi and NTP), a real
Mosquitto and a paho-mqtt subscriber.

What this shows: the config a profile gives wires the real drivers to the
right parts; the scheduler reads each sensor when the core says it is due;
the watchdog is fed all along; Wi-Fi is joined and the clock set before the
first reading; a part missing at boot is a fault, not a crash; health says
why the board started and how strong the signal is. What it cannot show:
the ESP32's radio, ROM and timing.
"""

import json
import time

import pytest

from citynode.board.node import Node, check_config
from host_tools.emulators import bme280
from host_tools.emulators.board import WDT_RESET, EmulatedBoard
from host_tools.field import boards
from host_tools.mosquitto import HOST, Broker
from tests.paho_subscriber import Subscriber, publish, unique
from tests.test_schemas import StrictValidator, load_schema

UNIX_2000 = 946684800
US_PER_MM = 5.83  # round trip at about 343 m/s
EMPTY_MM = 1500
CAR_MM = 400
SENSORS = [
    {"id": "bay-1", "type": "bay_ultrasonic", "driver": "hc-sr04", "pings": 3, "period_s": 0.2,
     "empty_mm": EMPTY_MM, "dwell_on_s": 0.4, "dwell_off_s": 0.4},
    {"id": "env", "type": "env", "driver": "bme280", "period_s": 1, "fault_after_s": 1},
]


@pytest.fixture(scope="module")
def broker():
    with Broker() as b:
        yield b


def config(port, site, tmp_path, board="esp32-devkitc"):
    hal = boards.hal_config(boards.load(board), SENSORS)
    hal["wdt_s"] = 5
    cfg = {"site": site, "node": "bench-1", "broker": {"host": HOST, "port": port, "keepalive": 30},
           "network": {"kind": "wifi", "ssid": "city-iot", "password": "not-printed"},
           "sensors": SENSORS, "hal": hal, "outbox_dir": str(tmp_path / "outbox"),
           "settings": str(tmp_path / "settings.json"), "health_s": 1}
    check_config(cfg)
    return cfg


def car_after(triggers):
    """Echo times: the empty bay's floor, then a car from trigger `triggers` on."""
    return lambda i: int((EMPTY_MM if i < triggers else CAR_MM) * US_PER_MM)


def run_node(cfg, board, samples):
    from citynode.board.hal_esp32 import BoardHal

    hal = BoardHal(cfg, machine=board.machine, network=board.network, ntptime=board.ntptime,
                   time_ns=board.time_ns)
    node = Node(cfg, hal)
    done = node.run(max_samples=samples)
    node.client.disconnect()
    return done, hal


def test_profile_pins_drivers_schedule_watchdog_network(broker, tmp_path):
    site = unique("board")
    prefix = "citynode/%s/bench-1/" % site
    cfg = config(broker.port, site, tmp_path)
    board = EmulatedBoard(i2c_pins=cfg["hal"]["i2c"], join_after=3, cause=WDT_RESET)
    sonar = board.add_ranger(5, 18, car_after(6))  # the devkitc profile's first trigger/echo pair
    board.attach(bme280.ADDRESS, bme280.BME280Device())
    t0 = time.time()
    with Subscriber(broker.port, prefix) as sub:
        done, hal = run_node(cfg, board, 16)
        assert done["settled"] and done["lost"] == 0, done
        assert sub.wait(lambda: sub.first_seen() >= done["seq"])
    msgs = sub.data()
    assert [p["seq"] for _s, p, _d in msgs] == list(range(1, done["seq"] + 1))
    by = {}
    for suffix, p, _d in msgs:
        by.setdefault(suffix, []).append(p)
    # the bay: free once calibrated-by-config, then the car
    assert [p["state"] for p in by["bay/bay-1"]] == ["free", "occupied"]
    assert [(e["kind"], e["sensor"], e["state"]) for e in by["event"]] == [("occupancy", "bay-1", "occupied")]
    pings = hal.parts["bay-1"].driver.stats["pings"]
    assert sonar.triggers == pings and pings % 3 == 0 and pings >= 3 * 8
    # the BME280 through Adafruit's driver: the datasheet's example values
    env = by["env"][0]
    assert (env["temp_c"], env["pressure_pa"]) == (25.08, 100653)
    # the clock: set before the first reading; payload times are now's
    assert board.ntp_syncs == ["pool.ntp.org"] and board.joins == ["city-iot"]
    assert all(t0 - 2 <= p["ts"] <= time.time() + 1 for _s, p, _d in msgs)
    schema = StrictValidator(load_schema("health"))
    assert by["health"]
    for h in by["health"]:
        assert not list(schema.iter_errors(h)), h
        assert (h["rssi"], h["reset"]) == (-61, "watchdog")
    # the watchdog, set from hal.wdt_s, never went hungry for long
    assert board.wdt.timeout == 5000
    assert board.wdt.feeds > done["samples"] and board.wdt.longest_gap_ms < 1000
    assert "not-printed" not in json.dumps(msgs)


def test_home_assistant_discovery(broker, tmp_path):
    """With ha_discovery on, the node publishes retained config topics that
    point at its own topics and availability."""
    site = unique("ha")
    cfg = dict(config(broker.port, site, tmp_path), ha_discovery=True)
    board = EmulatedBoard(i2c_pins=cfg["hal"]["i2c"])
    board.add_ranger(5, 18, car_after(0))
    board.attach(bme280.ADDRESS, bme280.BME280Device())
    run_node(cfg, board, 3)
    with Subscriber(broker.port, "homeassistant/") as ha:
        assert ha.wait(lambda: len(ha.got) >= 4)
        time.sleep(0.3)
    got = {t: (json.loads(p), r) for t, p, r, _d in ha.got if site in t}
    uid = "%s_bench-1" % site
    assert sorted(got) == sorted("homeassistant/%s/%s_%s/config" % (c, uid, o) for c, o in (
        ("binary_sensor", "bay-1"), ("sensor", "env_temperature"), ("sensor", "env_humidity"),
        ("sensor", "env_atmospheric_pressure")))
    bay, retained = got["homeassistant/binary_sensor/%s_bay-1/config" % uid]
    assert retained
    prefix = "citynode/%s/bench-1/" % site
    assert (bay["state_topic"], bay["availability_topic"], bay["device_class"]) == (
        prefix + "bay/bay-1", prefix + "status", "occupancy")
    assert (bay["payload_on"], bay["payload_off"]) == ("occupied", "free")
    temp = got["homeassistant/sensor/%s_env_temperature/config" % uid][0]
    assert (temp["state_topic"], temp["unit_of_measurement"], temp["value_template"]) == (
        prefix + "env", "°C", "{{ value_json.temp_c }}")
    for t in got:
        publish(broker.port, t, b"", retain=True)


def test_a_missing_part_is_a_fault_and_the_node_goes_on(broker, tmp_path):
    site = unique("nobme")
    prefix = "citynode/%s/bench-1/" % site
    cfg = config(broker.port, site, tmp_path)
    board = EmulatedBoard(i2c_pins=cfg["hal"]["i2c"])
    board.add_ranger(5, 18, car_after(0))  # no BME280 on the bus
    with Subscriber(broker.port, prefix) as sub:
        done, _hal = run_node(cfg, board, 12)
        assert sub.wait(lambda: sub.first_seen() >= done["seq"])
    events = [p for s, p, _d in sub.data() if s == "event"]
    assert {"kind": "fault", "sensor": "env", "fault": "no_answer", "active": True} in [
        {k: v for k, v in e.items() if k not in ("ts", "seq")} for e in events]
    assert any(e["kind"] == "occupancy" and e["state"] == "occupied" for e in events)


def test_a_miswired_i2c_bus_answers_nothing(tmp_path):
    cfg = config(1, "x", tmp_path, board="esp32s3-devkitc-1")  # the S3's I2C pins: 8/9
    board = EmulatedBoard(i2c_pins={"id": 0, "sda": 21, "scl": 22})  # the part is on 21/22
    board.attach(bme280.ADDRESS, bme280.BME280Device())
    from citynode.board.hal_esp32 import BoardHal

    hal = BoardHal(cfg, machine=board.machine, network=board.network, ntptime=board.ntptime,
                   time_ns=board.time_ns)
    assert hal.parts["env"].sample() == {"fault": "no_answer"}


WATER = [
    {"id": "street", "type": "water", "driver": "jsn-sr04t", "pings": 3, "mount_mm": 3500,
     "thresholds_mm": [50, 150, 300], "fast_s": 2, "slow_s": 2, "max_rise_mm_min": 3000},
    {"id": "env", "type": "env", "driver": "bme280", "period_s": 2},
]


def test_duty_cycle_sleeps_between_readings_and_wakes_where_it_was(broker, tmp_path, monkeypatch):
    """Deep sleep between readings: before each sleep the outbox is empty and
    the core's state goes to RTC memory; each wake (a reset) restores it, so
    the stream goes on as from a node that never slept: seq without gaps,
    each alert raised once, health saying `deepsleep`."""
    from citynode.board import node as node_mod
    from citynode.board.hal_esp32 import BoardHal
    from host_tools.emulators.board import DEEPSLEEP_RESET, DeepSleep

    monkeypatch.setattr(node_mod, "SLEEP_MIN_MS", 1000)
    monkeypatch.setattr(node_mod, "WAKE_LEAD_MS", 300)
    site = unique("duty")
    prefix = "citynode/%s/bench-1/" % site
    hal = boards.hal_config(boards.load("esp32-devkitc"), WATER)
    cfg = {"site": site, "node": "bench-1", "broker": {"host": HOST, "port": broker.port, "keepalive": 30},
           "network": {"kind": "wifi", "ssid": "city-iot"}, "power": "duty_cycle", "sensors": WATER,
           "hal": dict(hal, wdt_s=5), "outbox_dir": str(tmp_path / "outbox"),
           "settings": str(tmp_path / "settings.json"), "health_s": 5}
    check_config(cfg)
    # the RTC lost its time with the power: NTP sets it at the first boot, a
    # step of 26 years the ticks leave out, before and after every sleep
    board = EmulatedBoard(i2c_pins=hal["i2c"], rtc_behind_s=int(time.time()) - UNIX_2000)
    t0 = time.time()
    # the water rises 40 mm per burst of 3 pings (a flash flood: a high max_rise_mm_min)
    board.add_ranger(5, 18, lambda i: int((3500 - min(400, 40 * (i // 3))) * US_PER_MM))
    board.attach(bme280.ADDRESS, bme280.BME280Device())
    sleeps, kept = [], []
    with Subscriber(broker.port, prefix) as sub:
        while len(sleeps) < 8:
            hal = BoardHal(cfg, machine=board.machine, network=board.network, ntptime=board.ntptime,
                           time_ns=board.time_ns)
            node = Node(cfg, hal)
            with pytest.raises(DeepSleep) as slept:
                node.run()
            sleeps.append(slept.value.ms)
            kept.append(len(board.rtc_memory))
            time.sleep(slept.value.ms / 1000)  # asleep; the RTC runs on
            board.cause = DEEPSLEEP_RESET
        n = node.publisher.seq
        assert sub.wait(lambda: sub.first_seen() >= n)
    msgs = sub.data()
    assert [p["seq"] for _s, p, _d in msgs] == list(range(1, n + 1))  # no gap across 8 wakes
    alerts = [p["alert"] for s, p, _d in msgs if s == "event" and p["kind"] == "alert"]
    assert alerts == ["watch", "warning", "danger"]
    levels = [p["level_mm"] for s, p, _d in msgs if s == "water"]
    assert levels == sorted(levels) and levels[-1] >= 300
    assert [h["reset"] for s, h, _d in msgs if s == "health"][-1] == "deepsleep"
    assert not [p for s, p, _d in msgs if s == "event" and p["kind"] == "gap"]
    assert all(t0 - 2 <= p["ts"] <= time.time() + 1 for _s, p, _d in msgs)
    assert sub.status().count(b"offline") >= 8  # a clean goodbye before each sleep
    assert all(0 < k <= 2048 for k in kept)  # the state fitted RTC memory
    assert all(700 - 400 <= ms <= 2000 - 300 for ms in sleeps), sleeps


def test_a_clock_set_after_boot_moves_no_tick_and_stamps_the_next_payload(broker, tmp_path, monkeypatch):
    """No NTP at boot (the RTC reads 2000-01-01 after the power cut): the
    node runs on the RTC's time, tries again every NTP_RETRY_MS, and the
    step of 26 years that NTP then makes moves no tick (no silence, no
    restart, the car's dwell goes on) while every later payload carries
    the right time."""
    from citynode.board import hal_esp32
    monkeypatch.setattr(hal_esp32, "NTP_RETRY_MS", 300)
    site = unique("ntp")
    cfg = config(broker.port, site, tmp_path)
    board = EmulatedBoard(i2c_pins=cfg["hal"]["i2c"], join_after=1, rtc_behind_s=int(time.time()) - UNIX_2000)
    board.ntp_fails = True

    def echoes(i):
        if i == 30:  # the time server answers from the tenth burst on
            board.ntp_fails = False
        return int((EMPTY_MM if i < 33 else CAR_MM) * US_PER_MM)

    board.add_ranger(5, 18, echoes)
    board.attach(bme280.ADDRESS, bme280.BME280Device())
    t0 = time.time()
    with Subscriber(broker.port, "citynode/%s/bench-1/" % site) as sub:
        done, hal = run_node(cfg, board, 40)
        assert sub.wait(lambda: sub.first_seen() >= done["seq"])
    msgs = sub.data()
    assert hal.synced and len(board.ntp_syncs) == 1
    ts = [p["ts"] for _s, p, _d in msgs]
    early = [x for x in ts if x < UNIX_2000 + 3600]
    assert early and ts[:len(early)] == early  # the RTC's time first, then only the right one
    assert all(t0 - 2 <= x <= time.time() + 1 for x in ts[len(early):])
    events = [p for s, p, _d in msgs if s == "event"]
    assert [(e["kind"], e.get("state")) for e in events] == [("occupancy", "occupied")]
    assert t0 - 2 <= events[0]["ts"]
