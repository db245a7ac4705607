"""The small validators every module uses; each returns the parsed value or raises a one-line ValueError."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SEED_MAX = 2**32 - 1  # seeds are mixed as 1_000_003 * seed + ... before torch.Generator.manual_seed (int64)
FRACTION_TOLERANCE = 1e-9  # two fractions (sparsities) this close are the same one
SHOWN_DIGITS = 40  # an integer with about this many digits or more is shown by its length in messages


def shown(value: Any) -> str:
    """`value` for a message: its repr, but an integer too long to read as 'an integer of N digits'."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 3.33 * SHOWN_DIGITS:
        return f"an integer of {len(str(abs(value))) if abs(value).bit_length() < 14_000 else 'over 4000'} digits"
    return repr(value)


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int: integral, not a bool, within [minimum, maximum] where given."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer{bound_text(minimum, maximum)}, got {shown(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer{bound_text(minimum, maximum)}, got {shown(value)}")
    return int(value)


def bound_text(minimum: float | None, maximum: float | None) -> str:
    """' >= a', ' <= b' or ' in [a, b]' for messages."""
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""


def number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
           open_minimum: bool = False) -> float:
    """`value` as a finite float (ints accepted, bools and text not), within the bounds where given."""
    bound = f" > {minimum}" if open_minimum and maximum is None else bound_text(minimum, maximum)
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int beyond the largest float
        finite = False
    if not finite:
        raise ValueError(f"{name} must be a finite number{bound}, got {shown(value)}")
    value = float(value)
    low_bad = minimum is not None and (value <= minimum if open_minimum else value < minimum)
    if low_bad or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be a number{bound}, got {value!r}")
    return value


def fraction(name: str, value: Any) -> float:
    """`value` as a float in [0, 1]."""
    return number(name, value, 0.0, 1.0)


def same_fraction(a: Any, b: Any) -> Any:
    """Whether fractions `a` and `b` are the same one (elementwise for arrays and pandas Series)."""
    return abs(a - b) < FRACTION_TOLERANCE


def among(value: float, fractions: Iterable[float]) -> bool:
    """Whether the fraction `value` is one of `fractions`."""
    return any(same_fraction(value, f) for f in fractions)


def seed(name: str, value: Any) -> int:
    """`value` as a seed: an integer in [0, 2**32 - 1] (the lab derives further seeds from it)."""
    return integer(name, value, 0, SEED_MAX)


def one_of(name: str, value: Any, choices: Iterable[str]) -> str:
    """`value` if it is one of `choices`; the message lists them."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")
    return value


def listing(name: str, value: Any, item=None, distinct: bool = False, nonempty: bool = True) -> list:
    """`value` as a list (a tuple accepted, text not), each item passed through `item(name[i], v)` if given."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        hint = " (text, not a list: from the command line give lists as YAML, e.g. -p NAME '[a, b]')" \
            if isinstance(value, str) else ""
        raise ValueError(f"{name} must be a list, got {value!r}{hint}")
    out = [item(f"{name}[{i}]", v) if item else v for i, v in enumerate(value)]
    if nonempty and not out:
        raise ValueError(f"{name} must not be empty")
    if distinct:
        seen = [v for i, v in enumerate(out) if v in out[:i]]
        if seen:
            raise ValueError(f"{name} must not repeat a value, got {list(value)!r} ({seen[0]!r} twice)")
    return out


def mapping(name: str, value: Any) -> dict:
    """`value` as a dict with string keys."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a mapping of names to values, got {value!r}")
    return dict(value)


def increasing(name: str, values: Sequence[float]) -> list[float]:
    """`values` as a non-empty, strictly increasing list of fractions in [0, 1]."""
    out = listing(name, values, fraction)
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)!r}")
    return out
