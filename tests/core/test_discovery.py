"""Home Assistant discovery configs (citynode.link.discovery) for each sensor type."""

from citynode.link.discovery import configs

CFG = {"site": "river", "node": "st-1", "sensors": [
    {"id": "street", "type": "water"}, {"id": "b1", "type": "bay_magnetic"}, {"id": "env", "type": "env"}]}


def test_one_entity_per_reading_sharing_the_device():
    got = dict(configs(CFG, "0.1.0"))
    topics = sorted(got)
    assert topics == sorted([
        "homeassistant/sensor/river_st-1_street_level/config",
        "homeassistant/binary_sensor/river_st-1_street_flood/config",
        "homeassistant/binary_sensor/river_st-1_b1/config",
        "homeassistant/sensor/river_st-1_env_temperature/config",
        "homeassistant/sensor/river_st-1_env_humidity/config",
        "homeassistant/sensor/river_st-1_env_atmospheric_pressure/config"])
    level = got["homeassistant/sensor/river_st-1_street_level/config"]
    assert level["state_topic"] == "citynode/river/st-1/water"
    assert (level["device_class"], level["unit_of_measurement"]) == ("distance", "mm")
    flood = got["homeassistant/binary_sensor/river_st-1_street_flood/config"]
    assert flood["device_class"] == "moisture"
    assert flood["value_template"] == "{{ 'OFF' if value_json.alert == 'normal' else 'ON' }}"
    ids = set()
    for p in got.values():
        assert p["availability_topic"] == "citynode/river/st-1/status"
        assert p["device"]["identifiers"] == ["citynode_river_st-1"] and p["device"]["sw_version"] == "0.1.0"
        ids.add(p["unique_id"])
    assert len(ids) == len(got)
