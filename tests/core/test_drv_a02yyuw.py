"""A02YYUW (UART) driver against the byte-stream emulator.
MicroPython-compatible: plain functions and asserts."""

from citynode.drivers import DriverError
from citynode.drivers.a02yyuw import A02YYUW
from host_tools.emulators.uart import A02YYUWStream, frame


def make(u, **kw):
    """The driver on the emulated part, on the emulator's clock."""
    return A02YYUW(u, sleep_ms=u.sleep_ms, **kw)


def error_of(sonar):
    try:
        sonar.read_mm()
    except DriverError as e:
        assert isinstance(e, OSError)
        assert str(e) == e.fault
        return e.fault
    raise AssertionError("read_mm did not raise")


def test_frame_matches_the_datasheet_example():
    # DFRobot's example: FF 07 A1 A7 is 0x07A1 = 1953 mm.
    assert frame(1953) == b"\xff\x07\xa1\xa7"
    assert frame(0x01FF) == b"\xff\x01\xff\xff"


def test_clean_frames():
    u = A02YYUWStream()
    u.feed(1953, 1960, 1948)
    sonar = make(u)
    assert sonar.read_mm() == 1953
    assert sonar.read_mm() == 1960
    assert sonar.read_mm() == 1948
    assert sonar.stats == {"frames": 3, "checksum_errors": 0, "resyncs": 0}


def test_reads_wait_for_the_next_frame_100ms_later():
    u = A02YYUWStream()
    u.feed(1000, 1001, 1002, 1003, 1004)
    sonar = make(u)
    assert sonar.burst(5) == [1000, 1001, 1002, 1003, 1004]
    assert u.now_ms == 400


def test_the_newest_frame_of_a_backlog_wins():
    u = A02YYUWStream()
    u.feed(1000, 1010, 1020)
    u.flush()
    sonar = make(u)
    assert sonar.read_mm() == 1020
    assert sonar.stats["frames"] == 3


def test_garbage_before_a_frame():
    u = A02YYUWStream()
    u.garbage(b"\x12\x34\x56\x00\x07")
    u.feed(1200)
    u.flush()
    sonar = make(u)
    assert sonar.read_mm() == 1200
    assert sonar.stats == {"frames": 1, "checksum_errors": 0, "resyncs": 1}

    u = A02YYUWStream()  # the noise first, the frame one period later
    u.garbage(b"\x12\x34\x56")
    u.feed(1200)
    sonar = make(u)
    assert sonar.read_mm() == 1200
    assert u.now_ms == 100


def test_garbage_holding_a_header_byte_costs_one_checksum_error():
    u = A02YYUWStream()
    u.garbage(b"\x10\xff\x20\x30")
    u.feed(2500)
    u.flush()
    sonar = make(u)
    assert sonar.read_mm() == 2500
    assert sonar.stats == {"frames": 1, "checksum_errors": 1, "resyncs": 1}


def test_a_header_byte_inside_the_data_keeps_sync():
    # 0x01FF (511 mm) is FF 01 FF FF, 0x0AFF and 0x00FF carry 0xFF too.
    u = A02YYUWStream()
    u.feed(0x01FF, 0x0AFF, 0x01FF, 0x00FF, 1000, 0x01FF)
    sonar = make(u)
    assert sonar.burst(6) == [511, 2815, 511, 255, 1000, 511]
    assert sonar.stats == {"frames": 6, "checksum_errors": 0, "resyncs": 0}
    u.feed(0x01FF, 0x01FF, 0x01FF)
    u.flush()
    assert sonar.read_mm() == 511
    assert sonar.stats == {"frames": 9, "checksum_errors": 0, "resyncs": 0}


def test_joining_a_stream_of_0x01ff_mid_frame_finds_the_true_frames():
    # Starting one byte into FF 01 FF FF FF 01 FF FF ..., FF FF 01 FF also
    # passes the checksum (as 0xFF01): the driver must not lock onto it.
    u = A02YYUWStream()
    u.put(frame(0x01FF)[1:])
    u.feed(0x01FF, 0x01FF, 0x01FF)
    u.flush()
    sonar = make(u)
    assert sonar.read_mm() == 511
    assert sonar.stats["frames"] == 3
    assert sonar.stats["resyncs"] == 1


def test_the_parts_no_target_marker_is_not_mistaken_for_misalignment():
    u = A02YYUWStream()
    u.feed(0xFFFE, 0xFFFF, 0xFFFE)
    u.flush()
    sonar = make(u)
    assert sonar.read_mm() is None
    assert sonar.stats == {"frames": 3, "checksum_errors": 0, "resyncs": 0}


def test_bad_checksum_is_counted_and_skipped():
    u = A02YYUWStream()
    u.bad_checksum(1000)
    u.feed(1100)
    u.flush()
    sonar = make(u)
    assert sonar.read_mm() == 1100
    assert sonar.stats == {"frames": 1, "checksum_errors": 1, "resyncs": 1}

    u = A02YYUWStream()  # paced: the bad frame, then the good one 100 ms later
    u.bad_checksum(1000)
    u.feed(1100)
    sonar = make(u)
    assert sonar.read_mm() == 1100
    assert sonar.stats["checksum_errors"] == 1


def test_truncated_frame_then_a_good_one():
    for keep in (1, 2, 3):
        u = A02YYUWStream()
        u.truncated(1000, keep)
        u.feed(1100)
        sonar = make(u)
        assert sonar.read_mm() == 1100
        assert sonar.stats["frames"] == 1
        assert sonar.stats["checksum_errors"] == 1


def test_a_frame_cut_between_two_reads_is_joined():
    u = A02YYUWStream()
    f = frame(3210)
    u.put(f[:2])
    sonar = make(u, timeout_ms=0)
    assert error_of(sonar) == "bad_frames"
    u.put(f[2:])
    assert sonar.read_mm() == 3210
    assert sonar.stats == {"frames": 1, "checksum_errors": 0, "resyncs": 0}


def test_silence_raises_silent_and_samples_no_answer():
    u = A02YYUWStream()
    sonar = make(u)
    assert error_of(sonar) == "no_answer"
    assert u.now_ms == 300
    u.silence(30)
    assert sonar.sample() == {"fault": "no_answer"}
    assert u.now_ms == 600  # one silent read ends the burst


def test_the_part_going_silent_after_a_reading():
    u = A02YYUWStream()
    u.feed(1500)
    sonar = make(u)
    assert sonar.burst(4) == [1500, None, None, None]
    assert sonar.sample(3) == {"fault": "no_answer"}


def test_a_short_silence_between_frames_is_waited_out():
    u = A02YYUWStream()
    u.feed(1000)
    u.silence(2)
    u.feed(1010)
    sonar = make(u)
    assert sonar.burst(2) == [1000, 1010]


def test_only_bad_frames_is_a_bad_frames_fault():
    u = A02YYUWStream()
    for _ in range(20):
        u.bad_checksum(1000)
    sonar = make(u)
    assert error_of(sonar) == "bad_frames"
    assert sonar.sample(3) == {"fault": "bad_frames"}
    assert sonar.stats["frames"] == 0
    assert sonar.stats["checksum_errors"] >= 4

    u = A02YYUWStream()  # noise alone, with no header at all
    for _ in range(20):
        u.garbage(b"\x01\x02\x03\x04")
    assert make(u).sample(2) == {"fault": "bad_frames"}


def test_truncated_frame_alone_is_bad_frames():
    u = A02YYUWStream()
    u.truncated(1000)
    assert error_of(make(u)) == "bad_frames"


def test_out_of_range_values_are_missing_not_numbers():
    u = A02YYUWStream()
    u.feed(0, 0xFFFE, 4501, 4500, 30)
    sonar = make(u)
    assert sonar.burst(5) == [None, None, None, 4500, 30]
    u.feed(1000, 0, 0xFFFE, 1002, 4600)
    assert sonar.sample(5) == {"distance_mm": [1000, 0, 0, 1002, 0]}


def test_nothing_seen_is_a_sample_of_zeros_not_a_fault():
    u = A02YYUWStream()
    u.feed(0xFFFE, 0xFFFE, 0)
    assert make(u).sample(3) == {"distance_mm": [0, 0, 0]}


def test_max_mm_is_configurable():
    u = A02YYUWStream()
    u.feed(5000, 6001)
    sonar = make(u, max_mm=6000)
    assert sonar.burst(2) == [5000, None]


def test_one_garbled_reading_in_a_burst_is_a_zero():
    u = A02YYUWStream()
    u.feed(1000)
    for _ in range(4):
        u.bad_checksum(1001)
    u.feed(1002)
    sonar = make(u)
    assert sonar.sample(3) == {"distance_mm": [1000, 0, 1002]}


def test_a_backlog_longer_than_the_buffer_keeps_the_newest():
    u = A02YYUWStream()
    u.feed(*range(1000, 1030))  # 120 bytes, the buffer holds 8 frames
    u.flush()
    sonar = make(u, max_frames=8)
    assert sonar.read_mm() == 1029
    assert sonar.stats["frames"] <= 9
    assert u.any() == 0


def test_a_full_rx_buffer_drops_the_newest_bytes():
    u = A02YYUWStream(rxbuf=64)
    u.feed(*range(1000, 1020))
    u.flush()
    assert u.overflows == 16
    assert make(u).read_mm() == 1015


def test_reads_are_bounded():
    sleeps = []
    u = A02YYUWStream()
    for _ in range(100):
        u.bad_checksum(1000)

    def sleep(ms):
        sleeps.append(ms)
        u.sleep_ms(ms)

    sonar = A02YYUW(u, timeout_ms=300, sleep_ms=sleep)
    assert error_of(sonar) == "bad_frames"
    assert len(sleeps) == 30
    assert sum(sleeps) == 300
    sleeps[:] = []
    assert sonar.burst(5) == [None] * 5
    assert len(sleeps) == 150


def test_stats_count_everything():
    u = A02YYUWStream()
    u.feed(1000)
    u.garbage(b"\x01\x02")
    u.bad_checksum(1100)
    u.truncated(1200)
    u.feed(1300, 0xFFFE)
    u.flush()
    sonar = make(u)
    assert sonar.read_mm() is None  # the newest frame: the part saw nothing
    assert sonar.stats == {"frames": 3, "checksum_errors": 2, "resyncs": 1}


def test_emulated_uart_reads_like_machine_uart():
    u = A02YYUWStream()
    buf = bytearray(4)
    assert u.any() == 0
    assert u.read(4) is None
    assert u.read() is None
    assert u.readinto(buf) is None
    u.feed(1953, 1954)
    assert u.any() == 4  # the second frame is 100 ms away
    assert u.read(2) == b"\xff\x07"
    assert u.readinto(buf) == 2
    assert bytes(buf[:2]) == b"\xa1\xa7"
    u.advance(100)
    assert u.read() == frame(1954)
    assert u.write(b"\x55") == 1
    assert bytes(u.written) == b"\x55"


def test_without_a_clock_given_the_driver_sleeps_on_the_runtimes():
    from citynode.drivers import sleep_ms

    assert A02YYUW(A02YYUWStream()).sleep_ms is sleep_ms
