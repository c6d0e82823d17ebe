"""CircuitPython's `wifi.radio`: `connect()` blocks (on the world's clock)
and joins the world's network when the SSID and password match (and the
world's clock has passed the network's `away_until_ms`), else raises
ConnectionError after its timeout; `connected`, `ap_info.rssi`."""

from host_tools.emulators.circuitpython.cp_world import world


class _Network:
    def __init__(self, ssid, rssi):
        self.ssid = ssid
        self.rssi = rssi


class _Radio:
    def __init__(self):
        self.enabled = True
        self.connected = False
        self.hostname = "espressif"
        self.joins = 0

    def connect(self, ssid, password="", channel=0, bssid=None, timeout=None):
        w = world()
        net = w.wifi
        self.joins += 1
        away = w.now_ms < net.get("away_until_ms", 0)  # the access point is out of reach until then
        if ssid == net.get("ssid") and password == net.get("password", "") and not (net.get("down") or away):
            w.advance(net.get("join_ms", 1200))
            self.connected = True
            return
        w.advance(int((timeout or 8) * 1000))
        raise ConnectionError("No network with that ssid")

    @property
    def ap_info(self):
        if not self.connected:
            return None
        net = world().wifi
        return _Network(net.get("ssid"), net.get("rssi", -61))

    @property
    def ipv4_address(self):
        return "192.168.4.20" if self.connected else None


radio = _Radio()
