from citynode.sense import ranging
from citynode.sense.ranging import Ranger
from tests.core.helpers import Q16_20C, echo_for_mm


def test_speed_of_sound_in_dry_air():
    # 331.3 m/s * sqrt(1 + T/273.15): 331.30 at 0 °C, 343.21 at 20 °C, 354.73 at 40 °C
    assert ranging.speed_mm_s(0) == 331300
    assert abs(ranging.speed_mm_s(2000) - 343214) <= 1
    assert abs(ranging.speed_mm_s(4000) - 354730) <= 1
    assert abs(ranging.speed_mm_s(-1000) - 325178) <= 1


def test_humidity_adds_about_half_a_percent_at_30c_80rh():
    dry = ranging.speed_mm_s(3000)
    moist = ranging.speed_mm_s(3000, 800, 101325)
    gain_ppm = (moist - dry) * 1000000 // dry
    assert 4800 <= gain_ppm <= 5600


def test_saturation_pressure_table_interpolates():
    assert ranging.psat_pa(2000) == 2333
    assert 3162 < ranging.psat_pa(2700) < 4237
    assert ranging.psat_pa(-9000) == 19
    assert ranging.psat_pa(9000) == 20023


def test_isqrt():
    for n in (0, 1, 2, 3, 4, 15, 16, 17, 10 ** 12, 10 ** 12 + 1, 109759690000 * 2):
        r = ranging.isqrt(n)
        assert r * r <= n < (r + 1) * (r + 1)


def test_echo_round_trip_converts_to_millimetres():
    for mm in (30, 250, 1000, 2600, 3500, 5999):
        assert abs(ranging.echo_to_mm(echo_for_mm(mm), Q16_20C) - mm) <= 1


def test_products_stay_small_integers_for_the_longest_echo():
    q = ranging.half_speed_q16(ranging.speed_mm_s(6000, 1000, 90000))
    assert 65535 * q < (1 << 30)


def test_burst_median_with_an_outlier_dropped():
    r = Ranger(250, 6000)
    e = [echo_for_mm(m) for m in (2000, 2004, 1996, 2001, 1200, 2003, 1999)]
    assert abs(r.reduce_burst(e, Q16_20C) - 2001) <= 1


def test_burst_of_timeouts_is_a_fault_not_a_number():
    r = Ranger(250, 6000, 38000)
    assert r.reduce_burst([0, 0, 0], Q16_20C) == ranging.NO_ECHO
    assert r.reduce_burst([38000, 40000, 0], Q16_20C) == ranging.NO_ECHO


def test_blind_zone_and_out_of_range_are_faults():
    r = Ranger(250, 4000)
    assert r.reduce_burst([echo_for_mm(100)] * 3, Q16_20C) == ranging.BLIND_ZONE
    assert r.reduce_burst([echo_for_mm(4500)] * 3, Q16_20C) == ranging.OUT_OF_RANGE


def test_one_good_ping_of_three_is_not_enough():
    r = Ranger(250, 6000)
    assert r.reduce_burst([echo_for_mm(2000), 0, 0], Q16_20C) == ranging.NO_ECHO


def test_two_of_three_pings_are_enough():
    r = Ranger(250, 6000)
    assert abs(r.reduce_burst([echo_for_mm(2000), 0, echo_for_mm(2002)], Q16_20C) - 2001) <= 1


def test_scattered_pings_are_inconsistent():
    r = Ranger(250, 6000)
    e = [echo_for_mm(m) for m in (1000, 1500, 2000, 2500, 3000)]
    assert r.reduce_burst(e, Q16_20C) == ranging.INCONSISTENT


def test_warmer_air_means_a_shorter_echo_for_the_same_distance():
    hot = ranging.half_speed_q16(ranging.speed_mm_s(4000))
    e = echo_for_mm(3500, hot)
    assert abs(ranging.echo_to_mm(e, hot) - 3500) <= 1
    # read with a 20 °C speed, the same echo looks about 3.3 % shorter
    assert 3500 - ranging.echo_to_mm(e, Q16_20C) > 100


def test_distances_from_a_uart_part_reduce_like_echoes():
    r = Ranger(30, 4500)
    assert r.reduce_burst([2000, 2004, 0, 1996, 3100]) == 2000
    assert r.reduce_burst([0, 0, 1500]) == ranging.NO_ECHO
    assert r.reduce_burst([10, 12, 0]) == ranging.BLIND_ZONE
    assert r.reduce_burst([4600, 4700, 4800]) == ranging.OUT_OF_RANGE
