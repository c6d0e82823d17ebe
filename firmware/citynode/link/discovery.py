"""Home Assistant MQTT discovery: retained config topics describing the
node's entities, published once per boot when `ha_discovery` is true.

    homeassistant/<component>/<site>_<node>_<object>/config

Each bay is a `binary_sensor` of class `occupancy` on `bay/<id>`; a water
sensor gives a `sensor` (level, mm, class `distance`) and a `binary_sensor`
of class `moisture` (flooded: alert above normal) on `water`; a BME280
gives temperature, humidity and pressure sensors on `env`. All share the
node's device and its availability (`status`: online/offline). The
payloads are the node's own: Home Assistant reads them through value
templates. docs/node.md lists them.
"""

import json

from citynode import topic_prefix
from citynode.sensors import get as type_module

_ENV = (("temperature", "temp_c", "°C"), ("humidity", "humidity_pct", "%"),
        ("atmospheric_pressure", "pressure_pa", "Pa"))


def configs(cfg, version):
    """[(topic, payload dict)] for the node's sensors."""
    site, node = cfg["site"], cfg["node"]
    prefix = topic_prefix(site, node)
    uid = "%s_%s" % (site, node)
    device = {"identifiers": ["citynode_" + uid], "name": "%s %s" % (site, node), "manufacturer": "citynode",
              "model": "citynode node", "sw_version": version}
    out = []

    def add(component, obj, name, state_topic, extra):
        p = {"name": name, "unique_id": "%s_%s" % (uid, obj), "object_id": "%s_%s" % (uid, obj),
             "state_topic": prefix + state_topic, "availability_topic": prefix + "status",
             "payload_available": "online", "payload_not_available": "offline", "device": device}
        p.update(extra)
        out.append(("homeassistant/%s/%s_%s/config" % (component, uid, obj), p))

    for s in cfg["sensors"]:
        sid, topic = s["id"], type_module(s["type"]).TOPIC
        if topic == "bay":
            add("binary_sensor", sid, "Bay " + sid, "bay/" + sid,
                {"device_class": "occupancy", "value_template": "{{ value_json.state }}",
                 "payload_on": "occupied", "payload_off": "free"})
        elif topic == "water":
            add("sensor", sid + "_level", "Water level " + sid, "water",
                {"device_class": "distance", "unit_of_measurement": "mm", "state_class": "measurement",
                 "value_template": "{{ value_json.level_mm }}"})
            add("binary_sensor", sid + "_flood", "Flooding " + sid, "water",
                {"device_class": "moisture",
                 "value_template": "{{ 'OFF' if value_json.alert == 'normal' else 'ON' }}"})
        elif topic == "env":
            for dc, key, unit in _ENV:
                add("sensor", "%s_%s" % (sid, dc), "%s %s" % (sid, dc.replace("_", " ")), "env",
                    {"device_class": dc, "unit_of_measurement": unit, "state_class": "measurement",
                     "value_template": "{{ value_json.%s }}" % key})
    return out


def announce(client, cfg, version):
    """Publish every config topic, retained, at QoS 1; False (nothing sent)
    while the client's in-flight table has no room for them all."""
    items = configs(cfg, version)
    if client.max_pending - client.pending() < len(items):
        return False
    for topic, payload in items:
        client.publish(topic, json.dumps(payload, separators=(",", ":")), 1, True)
    return True
