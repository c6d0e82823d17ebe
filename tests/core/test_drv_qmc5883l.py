"""The QMC5883L driver against the register-level emulator, every fault path
included. Plain asserts in the subset MicroPython shares: pytest runs these
on CPython and tests/mp_runner.py inside MicroPython."""

from citynode.drivers import DriverError
from citynode.drivers.qmc5883l import QMC5883L
from host_tools.emulators.i2c import I2CBus
from host_tools.emulators.qmc5883l import ADDRESS, DOR, DRDY, OVL, REG_CTRL1, REG_STATUS, QMC5883LDevice


def _node(**settings):
    bus = I2CBus()
    dev = QMC5883LDevice()
    bus.attach(ADDRESS, dev)
    return bus, dev, QMC5883L(bus, **settings)


def _init_error(bus):
    try:
        QMC5883L(bus)
    except DriverError as e:
        return e
    raise AssertionError("QMC5883L() did not raise")


def _raw_error(drv):
    try:
        drv.read_raw()
    except DriverError as e:
        return e
    raise AssertionError("read_raw() did not raise")


# --- init -----------------------------------------------------------------


def test_init_soft_resets_sets_period_then_continuous_mode():
    bus, dev, drv = _node()
    # control 2 soft reset, SET/RESET period 0x01, control 1: OSR 512, ±2 G, 10 Hz, continuous
    assert dev.writes == [(0x0A, 0x80), (0x0B, 0x01), (0x09, 0x01)]
    assert dev.regs[0x09] == 0x01
    assert dev.regs[0x0B] == 0x01
    assert dev.continuous
    assert dev.range_gauss == 2


def test_init_encodes_range_odr_and_oversampling_in_control_1():
    cases = (
        ((8, 200, 64), 0xDD),  # OSR 11, RNG 01, ODR 11, MODE 01
        ((2, 50, 256), 0x45),  # OSR 01, RNG 00, ODR 01, MODE 01
        ((8, 100, 128), 0x99),  # OSR 10, RNG 01, ODR 10, MODE 01
    )
    for (rng, odr, osr), ctrl1 in cases:
        bus, dev, drv = _node(range_gauss=rng, odr_hz=odr, oversampling=osr)
        assert dev.writes[-1] == (0x09, ctrl1), (rng, odr, osr, dev.writes)
        assert dev.regs[0x09] == ctrl1


def test_unsupported_settings_raise_value_error():
    for kw in ({"range_gauss": 4}, {"odr_hz": 25}, {"oversampling": 1024}):
        bus = I2CBus()
        bus.attach(ADDRESS, QMC5883LDevice())
        try:
            QMC5883L(bus, **kw)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %r" % (kw,))


def test_range_sets_lsb_per_ut():
    assert _node()[2].lsb_per_ut == 120
    assert _node(range_gauss=2)[2].lsb_per_ut == 120
    assert _node(range_gauss=8)[2].lsb_per_ut == 30


def test_absent_part_raises_a_clear_error_at_init():
    e = _init_error(I2CBus())
    assert isinstance(e, OSError)
    assert e.fault == "no_answer"
    assert "QMC5883L not found at 0x0D" in str(e), str(e)
    assert "19" in str(e), str(e)


def test_wrong_chip_id_raises_a_clear_error_at_init():
    bus = I2CBus()
    dev = QMC5883LDevice()
    dev.regs[0x0D] = 0x12  # some other part answering at 0x0D
    bus.attach(ADDRESS, dev)
    e = _init_error(bus)
    assert str(e) == "QMC5883L not found at 0x0D (chip id 0x12)", str(e)
    assert e.fault == "no_answer"


def test_bus_stuck_at_init_raises_a_clear_error():
    bus = I2CBus()
    bus.attach(ADDRESS, QMC5883LDevice())
    bus.stuck = True
    e = _init_error(bus)
    assert "QMC5883L not found at 0x0D" in str(e) and "110" in str(e), str(e)


# --- readings -------------------------------------------------------------


def test_known_field_at_2_gauss_in_counts_and_ut():
    bus, dev, drv = _node(range_gauss=2)
    dev.set_field_ut(25.5, -40, 48)
    assert drv.sample() == {"mag": [3060, -4800, 5760]}
    dev.set_field_ut(25.5, -40, 48)
    assert drv.field_ut() == (25.5, -40.0, 48.0)


def test_known_field_at_8_gauss_in_counts_and_ut():
    bus, dev, drv = _node(range_gauss=8)
    dev.set_field_ut(25.5, -40, 48)
    assert drv.sample() == {"mag": [765, -1200, 1440]}
    dev.set_field_ut(25.5, -40, 48)
    assert drv.field_ut() == (25.5, -40.0, 48.0)


def test_negative_axes_decode_as_signed_int16():
    bus, dev, drv = _node()
    dev.set_field_ut(-20, -0.5, -273)
    assert drv.read_raw() == (-2400, -60, -32760)
    dev.set_field_counts(-1, -32768, 32767)
    assert drv.read_raw() == (-1, -32768, 32767)


def test_sample_holds_plain_ints():
    bus, dev, drv = _node()
    dev.set_field_ut(10, 20, 30)
    s = drv.sample()
    assert list(s) == ["mag"]
    for v in s["mag"]:
        assert type(v) is int


def test_first_sample_right_after_init():
    bus, dev, drv = _node()  # entering continuous mode converts at once
    assert drv.sample() == {"mag": [0, 0, 0]}


def test_drdy_clears_after_a_read_and_the_same_sample_is_not_read_twice():
    bus, dev, drv = _node()
    dev.set_field_ut(1, 2, 3)
    assert dev.regs[REG_STATUS] & DRDY
    assert drv.sample() == {"mag": [120, 240, 360]}
    assert not dev.regs[REG_STATUS] & DRDY
    assert drv.sample() == {"fault": "not_ready"}
    dev.convert()
    assert drv.sample() == {"mag": [120, 240, 360]}


def test_driver_waits_for_the_next_sample():
    bus, dev, drv = _node()
    drv.sample()
    dev.set_field_ut(5, 6, 7, after_polls=4)  # converts while the driver polls
    calls = bus.calls
    assert drv.sample() == {"mag": [600, 720, 840]}
    assert bus.calls - calls == 5  # four status polls, one data burst


def test_driver_gives_up_after_a_bounded_wait():
    bus, dev, drv = _node()
    drv.sample()
    dev.set_field_ut(5, 6, 7, after_polls=6)  # one poll more than the driver makes
    calls = bus.calls
    assert drv.sample() == {"fault": "not_ready"}
    assert bus.calls - calls == 6  # five status polls, one read-back of control 1
    assert drv.sample() == {"mag": [600, 720, 840]}  # the late sample, picked up next time
    e = _raw_error(drv)
    assert str(e) == "data not ready" and e.fault == "not_ready"


def test_not_ready_when_the_part_never_sets_drdy():
    bus = I2CBus()
    dev = QMC5883LDevice()
    dev.no_drdy = True
    bus.attach(ADDRESS, dev)
    drv = QMC5883L(bus)
    dev.set_field_ut(1, 2, 3)
    assert drv.sample() == {"fault": "not_ready"}
    assert drv.sample() == {"fault": "not_ready"}
    dev.no_drdy = False
    dev.convert()
    assert drv.sample() == {"mag": [120, 240, 360]}


def test_part_that_lost_its_configuration_is_restored():
    bus, dev, drv = _node(range_gauss=8)
    drv.sample()
    dev.power_on_reset()  # a brown-out: back in standby, registers at defaults
    dev.set_field_ut(10, 0, 0)
    assert dev.data() == (0, 0, 0)  # standby converts nothing
    assert drv.sample() == {"fault": "not_ready"}
    assert dev.regs[REG_CTRL1] == 0x11 and dev.regs[0x0B] == 0x01
    assert drv.sample() == {"mag": [300, 0, 0]}


def test_standby_part_reads_zeros_without_drdy():
    dev = QMC5883LDevice()
    dev.set_field_ut(10, 20, 30)
    assert dev.read(0x00, 7) == bytes(7)
    assert dev.read(0x0D, 1) == b"\xff"


# --- overflow ---------------------------------------------------------------


def test_overflow_is_a_fault_and_recovers():
    bus, dev, drv = _node(range_gauss=2)
    dev.set_field_ut(300, 0, -10)  # 36000 counts: past int16 at ±2 G
    assert dev.regs[REG_STATUS] & OVL
    assert dev.data() == (32767, 0, -1200)  # the part saturates
    assert drv.sample() == {"fault": "overflow"}
    dev.set_field_ut(0, -300, 0)
    assert dev.data() == (0, -32768, 0)
    e = _raw_error(drv)
    assert str(e) == "overflow" and e.fault == "overflow"
    dev.set_field_ut(200, 0, 0)
    assert not dev.regs[REG_STATUS] & OVL
    assert drv.sample() == {"mag": [24000, 0, 0]}


def test_the_same_field_fits_at_8_gauss():
    bus, dev, drv = _node(range_gauss=8)
    dev.set_field_ut(300, -300, 0)
    assert drv.sample() == {"mag": [9000, -9000, 0]}


def test_emulator_sets_dor_when_a_sample_is_overwritten():
    bus, dev, drv = _node()
    dev.set_field_ut(1, 1, 1)
    dev.set_field_ut(2, 2, 2)
    assert dev.regs[REG_STATUS] & DOR
    assert drv.sample() == {"mag": [240, 240, 240]}
    assert dev.regs[REG_STATUS] & (DOR | DRDY) == 0


# --- stuck-at ---------------------------------------------------------------


def test_stuck_after_20_identical_readings_and_recovery():
    bus, dev, drv = _node()
    dev.stuck_value = (100, -200, 300)
    for i in range(19):
        dev.convert()
        assert drv.sample() == {"mag": [100, -200, 300]}, i
    for _ in range(3):
        dev.convert()
        assert drv.sample() == {"fault": "stuck"}
    assert drv.stats == {"reads": 22, "faults": 3}
    dev.stuck_value = None
    dev.set_field_counts(100, -200, 301)
    assert drv.sample() == {"mag": [100, -200, 301]}
    dev.convert()  # identical again, but the run restarted
    assert drv.sample() == {"mag": [100, -200, 301]}


def test_stuck_raises_from_read_raw():
    bus, dev, drv = _node(stuck_after=3)
    dev.stuck_value = (7, 7, 7)
    dev.convert()
    drv.read_raw()
    dev.convert()
    drv.read_raw()
    dev.convert()
    e = _raw_error(drv)
    assert e.fault == "stuck" and "3 identical" in str(e), str(e)


def test_a_noisy_constant_field_is_never_stuck():
    bus, dev, drv = _node()
    dev.noise_counts = 3
    for _ in range(200):
        dev.set_field_ut(20, -5, 43)
        s = drv.sample()
        assert "mag" in s, s
        assert abs(s["mag"][0] - 2400) <= 3 and abs(s["mag"][2] - 5160) <= 3
    assert drv.stats["faults"] == 0


def test_stuck_detection_can_be_switched_off():
    bus, dev, drv = _node(stuck_after=0)
    dev.stuck_value = (1, 2, 3)
    for _ in range(50):
        dev.convert()
        assert drv.sample() == {"mag": [1, 2, 3]}


# --- bus faults ---------------------------------------------------------------


def test_bus_stuck_low_gives_no_answer_then_recovers():
    bus, dev, drv = _node()
    dev.set_field_ut(1, 2, 3)
    bus.stuck = True
    assert drv.sample() == {"fault": "no_answer"}
    e = _raw_error(drv)
    assert e.fault == "no_answer" and "110" in str(e), str(e)
    assert isinstance(e, OSError)
    bus.stuck = False
    assert drv.sample() == {"mag": [120, 240, 360]}


def test_transient_eio_gives_no_answer_then_recovers():
    bus, dev, drv = _node()
    dev.set_field_ut(1, 2, 3)
    bus.fail_next(1)
    assert drv.sample() == {"fault": "no_answer"}
    assert drv.sample() == {"mag": [120, 240, 360]}
    dev.convert()
    bus.fail_next(2)
    e = _raw_error(drv)
    assert e.fault == "no_answer" and "5" in str(e), str(e)
    assert drv.sample() == {"fault": "no_answer"}
    assert drv.sample() == {"mag": [120, 240, 360]}


def test_part_gone_after_init_gives_no_answer():
    bus, dev, drv = _node()
    bus.detach(ADDRESS)
    e = _raw_error(drv)
    assert e.fault == "no_answer" and "19" in str(e), str(e)
    bus.attach(ADDRESS, dev)
    dev.convert()
    assert "mag" in drv.sample()


def test_stats_count_reads_and_faults():
    bus, dev, drv = _node()
    assert drv.stats == {"reads": 0, "faults": 0}
    dev.set_field_ut(1, 1, 1)
    drv.sample()  # good
    drv.sample()  # not ready
    bus.stuck = True
    drv.sample()  # no answer
    bus.stuck = False
    dev.set_field_ut(999, 0, 0)
    drv.sample()  # overflow
    dev.set_field_ut(1, 1, 1)
    drv.field_ut()  # good
    assert drv.stats == {"reads": 5, "faults": 3}


# --- the emulated bus ---------------------------------------------------------


def test_bus_scan_and_absent_address():
    bus, dev, drv = _node()
    assert bus.scan() == [0x0D]
    for call in (
        lambda: bus.readfrom_mem(0x1E, 0, 1),
        lambda: bus.writeto(0x1E, b"\x00"),
        lambda: bus.writeto_mem(0x1E, 0, b"\x00"),
    ):
        try:
            call()
        except OSError as e:
            assert e.args[0] == 19
        else:
            raise AssertionError("absent address answered")


def test_bus_pointer_writes_and_burst_reads():
    bus, dev, drv = _node()
    dev.set_field_counts(0x0201, -2, 0x0605)
    assert bus.writeto(ADDRESS, b"\x00") == 1
    buf = bytearray(7)
    bus.readfrom_into(ADDRESS, buf)
    assert bytes(buf) == b"\x01\x02\xfe\xff\x05\x06\x05"  # status: DRDY | DOR
    assert bus.writeto(ADDRESS, bytes((0x0B, 0x02))) == 2
    assert dev.regs[0x0B] == 0x02
    assert bus.readfrom_mem(ADDRESS, 0x0D, 1) == b"\xff"
    buf = bytearray(1)
    bus.readfrom_mem_into(ADDRESS, 0x09, buf)
    assert buf[0] == 0x01


def test_bus_fault_injection():
    bus, dev, drv = _node()
    bus.fail_next(2)
    for _ in range(2):
        try:
            bus.scan()
        except OSError as e:
            assert e.args[0] == 5
        else:
            raise AssertionError("fail_next did not fail")
    assert bus.scan() == [0x0D]
    bus.stuck = True
    try:
        bus.readfrom_mem(ADDRESS, 0x06, 1)
    except OSError as e:
        assert e.args[0] == 110
    else:
        raise AssertionError("stuck bus answered")
