"""The shared validators: parsed values back, one-line messages naming the value and what is accepted."""

import math

import pytest

from oneshot_lab.util import checks


def test_integers_are_integral_and_not_bool():
    assert checks.integer("n", 3) == 3 and checks.integer("n", 4.0) == 4
    for bad in (True, 2.5, "3", None, math.inf):
        with pytest.raises(ValueError, match="n must be an integer"):
            checks.integer("n", bad)
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 5\], got 9"):
        checks.integer("n", 9, 1, 5)


def test_numbers_are_finite_and_in_range():
    assert checks.number("lr", 1) == 1.0 and isinstance(checks.number("lr", 1), float)
    for bad in (math.nan, math.inf, "1e-3", False, None):
        with pytest.raises(ValueError, match="lr must be a finite number"):
            checks.number("lr", bad)
    with pytest.raises(ValueError, match="lr must be a number > 0.0"):
        checks.number("lr", 0.0, 0.0, open_minimum=True)
    assert checks.fraction("s", 0) == 0.0 and checks.fraction("s", 1) == 1.0
    with pytest.raises(ValueError, match=r"s must be a number in \[0.0, 1.0\], got 1.5"):
        checks.fraction("s", 1.5)


def test_seeds_fit_torch():
    assert checks.seed("seed", 2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 2**62, 10**20):
        with pytest.raises(ValueError, match="seed must be an integer in"):
            checks.seed("seed", bad)


def test_one_of_lists_the_choices():
    assert checks.one_of("scope", "layer", ("global", "layer")) == "layer"
    with pytest.raises(ValueError, match="unknown scope 'net'; valid choices: global, layer"):
        checks.one_of("scope", "net", ("global", "layer"))
    with pytest.raises(ValueError, match="unknown scope 3"):
        checks.one_of("scope", 3, ("global", "layer"))


def test_lists_mappings_and_schedules():
    assert checks.listing("xs", (1, 2), checks.integer) == [1, 2]
    with pytest.raises(ValueError, match="xs must be a list, got 'ab' \\(text, not a list"):
        checks.listing("xs", "ab")
    with pytest.raises(ValueError, match=r"xs\[1\] must be an integer"):
        checks.listing("xs", [1, "2"], checks.integer)
    with pytest.raises(ValueError, match="must not repeat"):
        checks.listing("xs", [1, 1], distinct=True)
    with pytest.raises(ValueError, match="xs must not be empty"):
        checks.listing("xs", [])
    assert checks.listing("xs", [], nonempty=False) == []
    with pytest.raises(ValueError, match="must be a mapping"):
        checks.mapping("m", [("a", 1)])
    assert checks.increasing("s", [0.1, 0.5]) == [0.1, 0.5]
    with pytest.raises(ValueError, match="strictly increasing"):
        checks.increasing("s", [0.5, 0.5])
