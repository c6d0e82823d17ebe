"""HC-SR04 / JSN-SR04T (mode 0) driver against the echo-pulse emulator.
MicroPython-compatible: plain functions and asserts."""

from citynode.drivers.hcsr04 import HCSR04
from citynode.sense import ranging
from citynode.sense.ranging import Ranger, half_speed_q16, speed_mm_s
from host_tools.emulators.echo import EchoSource, TriggerPin, time_pulse_us
from tests.core.helpers import echo_for_mm

Q16 = half_speed_q16(speed_mm_s(2000))


def make(src, pings=7, gap_ms=150, timeout_us=38000):
    """The driver wired to the emulated part, on the emulator's clock."""
    return HCSR04(
        src.trigger,
        src.echo,
        pings=pings,
        gap_ms=gap_ms,
        timeout_us=timeout_us,
        pulse_us=time_pulse_us,
        sleep_ms=src.sleep_ms,
        sleep_us=src.sleep_us,
    )


def test_trigger_is_low_2us_then_high_10us_then_low():
    src = EchoSource([5831])
    sonar = make(src, pings=1)
    start = len(src.trigger.history)
    assert sonar.burst() == [5831]
    writes = src.trigger.history[start:]
    assert [v for t, v in writes] == [0, 1, 0]
    t_low, t_high, t_fall = [t for t, v in writes]
    assert t_high - t_low >= 2
    assert t_fall - t_high >= 10
    assert src.pulses == [10]
    assert src.triggers == 1
    assert src.fault is None


def test_every_ping_of_a_burst_is_a_proper_trigger_pulse_gap_ms_apart():
    src = EchoSource([1000] * 7)
    make(src).burst()
    assert src.pulses == [10] * 7
    assert src.faults == []
    rises = [t for t, v in src.trigger.history if v == 1]
    assert len(rises) == 7
    for i in range(1, 7):
        assert rises[i] - rises[i - 1] >= 150000


def test_burst_returns_the_programmed_echo_times():
    echoes = [5831, 5840, 5828, 5835, 5833, 5830, 5829]
    src = EchoSource(echoes)
    sonar = make(src)
    assert sonar.burst() == echoes
    assert sonar.stats == {"pings": 7, "timeouts": 0}
    assert src.pending() == 0


def test_sample_is_the_cores_echo_format():
    src = EchoSource([1200, 1210, 1190])
    assert make(src, pings=3).sample() == {"echo_us": [1200, 1210, 1190]}


def test_echo_times_from_a_function_of_the_trigger_index():
    src = EchoSource(lambda n: 2000 + 10 * n)
    sonar = make(src, pings=4)
    assert sonar.burst() == [2000, 2010, 2020, 2030]
    assert sonar.burst() == [2040, 2050, 2060, 2070]


def test_no_echo_pulse_is_minus_2_and_becomes_0():
    src = EchoSource([None])
    src.trigger.value(1)
    src.sleep_us(10)
    src.trigger.value(0)
    t0 = src.now_us
    assert time_pulse_us(src.echo, 1, 38000) == -2
    assert src.now_us - t0 == 38000

    src = EchoSource([3000, None, 3010])
    sonar = make(src, pings=3)
    assert sonar.burst() == [3000, 0, 3010]
    assert sonar.stats == {"pings": 3, "timeouts": 1}
    assert src.fault is None


def test_echo_held_past_the_timeout_is_minus_1_and_becomes_0():
    # A JSN-SR04T that hears nothing holds ECHO high for 60 ms.
    src = EchoSource([60000])
    src.trigger.value(1)
    src.sleep_us(10)
    src.trigger.value(0)
    assert time_pulse_us(src.echo, 1, 38000) == -1

    src = EchoSource([60000, 4000, 60000])
    sonar = make(src, pings=3)
    assert sonar.burst() == [0, 4000, 0]
    assert sonar.stats == {"pings": 3, "timeouts": 2}
    assert src.fault is None


def test_a_pulse_as_long_as_the_timeout_is_no_echo():
    calls = []

    def pulse(pin, level, timeout_us):
        calls.append((level, timeout_us))
        return (37999, timeout_us, timeout_us + 5, 0, -1, -2)[len(calls) - 1]

    src = EchoSource()
    sonar = HCSR04(
        src.trigger, src.echo, pings=6, pulse_us=pulse, sleep_ms=src.sleep_ms, sleep_us=src.sleep_us
    )
    assert sonar.burst() == [37999, 0, 0, 0, 0, 0]
    assert calls == [(1, 38000)] * 6
    assert sonar.stats == {"pings": 6, "timeouts": 5}


def test_short_trigger_is_a_fault_and_the_echo_does_not_come():
    src = EchoSource([1000, 1000, 1000])

    def too_short(us):  # a port whose sleep_us sleeps half as long
        src.sleep_us(us // 2)

    sonar = HCSR04(
        src.trigger, src.echo, pings=3, pulse_us=time_pulse_us, sleep_ms=src.sleep_ms, sleep_us=too_short
    )
    assert sonar.burst() == [0, 0, 0]
    assert src.fault == "short_trigger"
    assert src.pulses == [5, 5, 5]
    assert src.triggers == 0
    assert src.pending() == 3  # the part never fired: nothing used up
    assert sonar.stats == {"pings": 3, "timeouts": 3}


def test_trigger_on_the_wrong_pin_is_a_fault_and_gives_no_echo():
    src = EchoSource([1000, 1000])
    elsewhere = TriggerPin(EchoSource())
    sonar = HCSR04(
        elsewhere, src.echo, pings=2, pulse_us=time_pulse_us, sleep_ms=src.sleep_ms, sleep_us=src.sleep_us
    )
    assert sonar.burst() == [0, 0]
    assert src.fault == "no_trigger"
    assert src.pending() == 2


def test_trigger_held_high_is_a_fault():
    src = EchoSource([1000])
    src.trigger.on()
    src.sleep_us(20)
    assert time_pulse_us(src.echo, 1, 38000) == -2
    assert src.fault == "trigger_held_high"
    src.trigger.off()  # the part fires on the falling edge, late
    assert src.pending() == 0


def test_triggering_while_the_echo_is_still_high_is_busy():
    src = EchoSource([60000, 1000])
    src.trigger.value(1)
    src.sleep_us(10)
    src.trigger.value(0)
    assert time_pulse_us(src.echo, 1, 38000) == -1
    assert src.echo.value() == 1  # the 60 ms echo goes on
    src.trigger.value(1)
    src.sleep_us(10)
    src.trigger.value(0)
    assert src.fault == "busy"
    assert src.pending() == 1
    # Timing now would only measure the tail of the old echo.
    assert time_pulse_us(src.echo, 1, 38000) == 60000 - 38000 - 10


def test_driver_skips_a_ping_while_the_last_echo_is_still_high():
    # Without the gap the next ping would land in the previous 60 ms echo and
    # time its tail: the driver reports no echo instead of that number.
    src = EchoSource([60000, 1000])
    sonar = make(src, pings=2, gap_ms=0)
    assert sonar.burst() == [0, 0]
    assert sonar.stats == {"pings": 2, "timeouts": 2}
    assert src.pending() == 1
    assert src.fault is None
    src = EchoSource([60000, 1000])
    assert make(src, pings=2, gap_ms=150).burst() == [0, 1000]
    assert src.fault is None


def test_emulated_time_pulse_us_follows_micropython():
    src = EchoSource([2000], rise_us=450)
    src.trigger.value(1)
    src.sleep_us(10)
    src.trigger.value(0)
    # Low now and asked for a low pulse: timing starts straight away and
    # ends when ECHO rises.
    assert time_pulse_us(src.echo, 0, 1000) == 450
    assert src.echo.value() == 1
    # Already high: timing starts straight away, so only the rest is seen.
    src.sleep_us(500)
    assert time_pulse_us(src.echo, 1, 38000) == 1500
    assert src.echo.value() == 0
    # Low for good now: a low pulse never ends (-1), a high one never starts (-2).
    assert time_pulse_us(src.echo, 0, 1000) == -1
    assert time_pulse_us(src.echo, 1, 1000) == -2


def test_echo_starting_after_the_timeout_is_minus_2():
    src = EchoSource([1000], rise_us=450)
    src.trigger.value(1)
    src.sleep_us(10)
    src.trigger.value(0)
    t0 = src.now_us
    assert time_pulse_us(src.echo, 1, 400) == -2
    assert src.now_us - t0 == 400


def test_untimed_source_checks_only_the_order_of_levels():
    src = EchoSource([1000], timed=False)
    sonar = HCSR04(
        src.trigger,
        src.echo,
        pings=1,
        pulse_us=time_pulse_us,
        sleep_ms=src.sleep_ms,
        sleep_us=lambda us: None,
    )
    assert sonar.burst() == [1000]
    assert src.pulses == [0]
    assert src.fault is None


def test_burst_through_the_cores_ranging_gives_millimetres():
    mm = (1500, 1502, 1498, 1501, 1499, 1503)
    src = EchoSource([echo_for_mm(m) for m in mm] + [None])
    sonar = make(src)
    echoes = sonar.burst()
    assert echoes[-1] == 0
    got = Ranger(20, 4000, 38000).reduce_burst(echoes, half_speed_q16(speed_mm_s(2000)))
    assert abs(got - 1500) <= 1


def test_all_timeout_burst_through_the_core_is_no_echo():
    src = EchoSource([None, 60000, None, 60000, None, None, 60000])
    sonar = make(src)
    echoes = sonar.burst()
    assert echoes == [0] * 7
    assert sonar.stats["timeouts"] == 7
    assert Ranger(20, 4000, 38000).reduce_burst(echoes, Q16) == ranging.NO_ECHO


def test_close_echoes_through_the_core_are_the_blind_zone():
    src = EchoSource([echo_for_mm(10)] * 7)
    echoes = make(src).burst()
    assert min(echoes) > 0
    assert Ranger(20, 4000, 38000).reduce_burst(echoes, Q16) == ranging.BLIND_ZONE


def test_stats_accumulate_over_bursts():
    src = EchoSource([1000, None, 1000, 60000, 1000, 1000])
    sonar = make(src, pings=3)
    sonar.burst()
    sonar.burst()
    assert sonar.stats == {"pings": 6, "timeouts": 2}


def test_without_a_clock_given_the_driver_sleeps_on_the_runtimes():
    from citynode.drivers import sleep_ms

    d = HCSR04(TriggerPin(EchoSource()), None, pulse_us=lambda *a: -2)
    assert d.sleep_ms is sleep_ms
    assert callable(d.sleep_us)
