import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from landscape.config.grid import DEFAULT_NUM, parse_norms

pos = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(pos, pos, st.integers(2, 200), st.sampled_from(["", ":log", ":lin"]))
def test_range_has_num_sorted_values_within_bounds(a, b, num, scale):
    lo, hi = sorted((a, b))
    if lo == hi:
        return
    try:
        v = parse_norms(f"{lo!r}:{hi!r}:{num}{scale}")
    except ValueError as e:  # bounds a few ulps apart: refused in one line, never a grid with repeated values
        assert "too close" in str(e) and (hi - lo) / hi < 1e-9 * num, (lo, hi, num)
        return
    assert len(v) == num
    assert v[0] == lo and v[-1] == hi
    assert np.all(np.diff(v) > 0)
    if scale == ":log":
        r = v[1:] / v[:-1]
        assert np.allclose(r, r[0], rtol=1e-6)
    else:
        assert np.allclose(np.diff(v), (hi - lo) / (num - 1), rtol=1e-6, atol=1e-9 * hi)


@given(st.lists(pos, min_size=1, max_size=20, unique=True))
def test_comma_list_is_sorted_set(values):
    v = parse_norms(",".join(repr(x) for x in values))
    assert v.tolist() == sorted(values)


def test_default_num():
    assert len(parse_norms("0.5:3")) == DEFAULT_NUM


def test_single_value():
    assert parse_norms("2").tolist() == [2.0]
    assert parse_norms("2:2:1").tolist() == [2.0]


@pytest.mark.parametrize("spec, fragment", [
    ("", "empty"),
    ("   ", "empty"),
    ("a:3", "not a number"),
    ("1:b", "not a number"),
    ("3:1", "below START"),
    ("0:3", "positive"),
    ("-1:3", "positive"),
    ("1:3:0", "at least 1"),
    ("1:3:-2", "at least 1"),
    ("1:3:x", "not an integer"),
    ("1:3:5:cubic", "spacing"),
    ("1:2:3:log:9", "expected"),
    ("1,,2", "empty entry"),
    ("1,2,2", "duplicate"),
    ("1,-2", "positive"),
    ("nan:2", "finite"),
    ("1:inf", "finite"),
    ("1:1:5", "START equals STOP"),
    ("1:2:1", "NUM=1"),
])
def test_malformed_specs_raise_one_line(spec, fragment):
    with pytest.raises(ValueError) as e:
        parse_norms(spec)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_value_axes_admit_zero_only_where_asked_and_never_on_a_log_scale():
    from landscape.config.grid import parse_values

    assert parse_values("0:10:3", "weight-decay", zero=True).tolist() == [0.0, 5.0, 10.0]
    with pytest.raises(ValueError, match="weight-decays must be positive"):
        parse_values("0:10:3", "weight-decay")
    with pytest.raises(ValueError, match="log-spaced axis cannot start at 0"):
        parse_values("0:1:3:log", "weight-decay", zero=True)
    with pytest.raises(ValueError, match="must be non-negative"):
        parse_values("-1,2", "weight-decay", zero=True)


def test_doctests_of_the_pure_modules():
    import doctest

    from landscape.config import grid
    from landscape.analysis import phases

    for module in (grid, phases):
        assert doctest.testmod(module).failed == 0, module.__name__
