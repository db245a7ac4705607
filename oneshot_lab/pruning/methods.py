"""The names a study prunes with: the criteria of the registry (`criteria.CRITERIA`, scores then a mask) and the
weight-updating pruners of `obs` that are not criteria (masks and updated weights), validated together."""

from __future__ import annotations

from typing import Any

from ..util import checks
from . import updating, criteria

PRUNERS = tuple(m for m in updating.METHODS if m not in criteria.CRITERIA)  # prune and update the survivors
NAMES = (*criteria.CRITERIA, *PRUNERS)


def check_name(name: Any, what: str = "criterion") -> str:
    """`name` if it is a registry criterion or a pruner; the error lists both."""
    return checks.one_of(what, name, NAMES)


def check_options(options: dict) -> dict:
    """`{name: {option: value}}` for criteria and weight-updating pruners, every name and value checked.

    A criterion's options come back complete (defaults filled in); a pruner's as given, so that the caller's
    seed stays the default of its calibration sample.
    """
    options = checks.mapping("score_options", options)
    pruner_options = {name: updating.check_options(name, value) for name, value in options.items() if name in PRUNERS}
    criterion_options = criteria.check_options({k: v for k, v in options.items() if k not in PRUNERS})
    return {**criterion_options, **{k: {o: v for o, v in options[k].items()} for k in pruner_options}}
