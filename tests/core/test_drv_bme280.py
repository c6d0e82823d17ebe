"""The BME280 through Adafruit's own driver (adafruit-circuitpython-bme280),
behind citynode's busio shim and an emulated part."""

from citynode.drivers.bme280 import BME280, BusioI2C
from citynode.sense.core import Core
from citynode.ticks import Clock
from host_tools.emulators.bme280 import ADDRESS, BME280Device
from host_tools.emulators.i2c import I2CBus


def part(**knobs):
    dev = BME280Device()
    for k in knobs:
        setattr(dev, k, knobs[k])
    bus = I2CBus()
    bus.attach(ADDRESS, dev)
    return dev, bus


def test_the_datasheet_compensation_example_reads_back_exactly():
    # Bosch BMP280 datasheet (BST-BMP280-DS001), section 3.12: calibration
    # T1..P9 = 27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500,
    # -14600, 6000 and raw adc_T = 519888, adc_P = 415148 give 25.08 °C and
    # 100653.27 Pa. The BME280 uses the same formulas and register layout.
    # Adafruit's driver truncates t_fine to an integer before the pressure
    # formula; that moves the pressure by 0.012 Pa (100653.258 on both
    # runtimes): far below the part's 0.18 Pa step.
    dev, bus = part()
    t, pa, rh = BME280(bus).read()
    assert abs(t - 25.08) < 0.005, t
    assert abs(pa - 100653.27) < 0.02, pa
    assert 0.0 <= rh <= 100.0


def test_init_resets_the_part_and_leaves_it_converting_on_its_own():
    dev, bus = part(measuring_reads=1000)  # a part that always says "measuring"
    sensor = BME280(bus)
    assert dev.resets == 1
    assert dev.regs[0xF4] & 0x03 == 0x03  # normal mode: no wait on the status
    assert "temp_c" in sensor.sample()


def test_nonsense_calibration_is_a_fault_not_a_crash():
    dev, bus = part()
    dev.set_calibration((27504, 26435, -1000, 0, 0, 0, 0, 0, 0, 0, 0, 0), (75, 362, 0, 313, 50, 30))
    assert BME280(bus).sample() == {"fault": "bad_calibration"}


def test_sample_is_the_cores_env_sample():
    dev, bus = part()
    s = BME280(bus).sample()
    assert s["temp_c"] == 25.08 and s["pressure_pa"] == 100653.3
    published = []
    core = Core([{"id": "env", "type": "env"}], Clock(0, 0), lambda t, topic, p: published.append(p))
    core.feed("env", 0, s)
    assert published[0]["temp_c"] == 25.08 and core.air[0] == 2508


def test_a_missing_part_or_a_wrong_chip_is_refused_at_start():
    bus = I2CBus()
    try:
        BME280(bus)
    except OSError as e:
        assert "no BME280 at 0x77" in str(e), str(e)
    else:
        raise AssertionError("no part, no error")
    dev, bus = part(chip_id=0x58)  # a BMP280: no humidity
    try:
        BME280(bus)
    except OSError as e:
        assert "0x58" in str(e), str(e)
    else:
        raise AssertionError("accepted a BMP280")


def test_a_bus_held_low_is_a_fault_and_the_next_good_read_recovers():
    dev, bus = part()
    sensor = BME280(bus)
    bus.stuck = True
    assert sensor.sample() == {"fault": "no_answer"}
    bus.stuck = False
    bus.fail_next(1)
    assert sensor.sample() == {"fault": "no_answer"}
    assert sensor.sample()["temp_c"] == 25.08
    assert sensor.stats == {"reads": 3, "faults": 2}


def test_impossible_values_are_a_fault_not_a_reading():
    dev, bus = part()
    sensor = BME280(bus)
    dev.adc_t = 0xFFFFF  # far past the part's 85 °C
    assert sensor.sample() == {"fault": "out_of_range"}


def test_a_part_that_repeats_itself_is_reported_stuck():
    dev, bus = part()
    sensor = BME280(bus)
    results = [sensor.sample() for _ in range(61)]
    assert "temp_c" in results[0]
    assert results[-1] == {"fault": "stuck"}
    dev.adc_t += 16
    assert "temp_c" in sensor.sample()


def test_the_shim_passes_buffer_slices_through():
    dev, bus = part()
    shim = BusioI2C(bus)
    buf = bytearray(4)
    shim.writeto_then_readfrom(ADDRESS, bytes([0xD0]), buf, in_start=1, in_end=2)
    assert buf == bytearray([0, 0x60, 0, 0])
