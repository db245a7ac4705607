"""The base of every experiment's configuration: a frozen dataclass with field help, validated on creation."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, NamedTuple, TypeVar

from . import rules
from .rules import Rule

C = TypeVar("C", bound="Config")


def option(default: Any, help: str, rule: Rule | str | None = None, **kwargs: Any) -> Any:
    """A dataclass field with a one-line `help` (shown by `Config.describe`).

    `rule` (a `Rule`, or the name of one in `rules.RULES`) replaces the rule the field's name has in the catalogue.
    """
    metadata = {"help": help, **({"rule": rules.RULES[rule] if isinstance(rule, str) else rule} if rule else {})}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    if isinstance(default, Config):  # a fresh copy per instance: configs hold dicts
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


class FieldCheck(NamedTuple):
    """How the base checks one field: its rule, the config class it must hold, whether None is accepted."""

    name: str
    rule: Rule | None
    config: type | None
    none_ok: bool


@functools.lru_cache(maxsize=None)
def field_checks(cls: type) -> tuple[FieldCheck, ...]:
    """The checks of every field of config class `cls` that has a rule or is declared as a config class."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that does not resolve: check what is a class already
        hints = {f.name: f.type for f in dataclasses.fields(cls) if isinstance(f.type, type)}
    out = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        parts = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        config = next((p for p in parts if isinstance(p, type) and issubclass(p, Config)), None)
        rule = f.metadata.get("rule") or rules.for_name(f.name)
        if rule is not None or config is not None:
            out.append(FieldCheck(f.name, rule, config, f.default is None or type(None) in parts))
    return tuple(out)


def field_rules(cls: type) -> dict[str, Rule]:
    """Field name -> the rule the config class `cls` checks it with (its own, else the catalogue's)."""
    return {c.name: c.rule for c in field_checks(cls) if c.rule is not None}


def _a(cls: type) -> str:
    """'a TrainConfig', 'an IMPConfig'."""
    return f"{'an' if cls.__name__[0] in 'AEIU' else 'a'} {cls.__name__}"  # 'a OneShotConfig'


def _shown(value: Any) -> str:
    """A value in a message: scalars as written, anything else by its type (a model's repr spans lines)."""
    return repr(value) if value is None or isinstance(value, (bool, int, float, str)) else f"a {type(value).__name__}"


class Config:
    """Mixin of frozen config dataclasses: `replace`, `as_dict`, `describe`, and the checks every field shares.

    Subclasses call `super().__post_init__()` first: every field with a rule (`rules.for_name` of its name, or
    its own `option(rule=...)`) is checked and stored normalised (lists as tuples), None accepted where the
    default is None, and a field declared as a config class must hold one. They then check the rest.
    Fields are validated on creation and on `replace`; a dict field (score_options, layer_rates) mutated in
    place afterwards is not validated again, so change configs with `replace`.
    """

    def __post_init__(self) -> None:
        """Check every field that has a rule or a config class, storing the normalised values."""
        for check in field_checks(type(self)):
            value = getattr(self, check.name)
            if value is None and check.none_ok:
                continue
            if check.config is not None and not isinstance(value, check.config):
                raise ValueError(f"{check.name} must be {_a(check.config)}{' or None' if check.none_ok else ''}, "
                                 f"got {_shown(value)}")
            if check.rule is not None:
                value = check.rule.check(check.name, value)
                self.store(check.name, tuple(value) if isinstance(value, list) else value)

    @classmethod
    def checked(cls: type[C], name: str, value: Any) -> C:
        """`value` if it is an instance of this config class, else a one-line ValueError naming `name`."""
        if not isinstance(value, cls):
            raise ValueError(f"{name} must be {_a(cls)}, got {_shown(value)}")
        return value

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no field(s) {', '.join(unknown)}; "
                             f"fields: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain data (nested configs as dicts)."""
        return dataclasses.asdict(self)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> 'default: help' for every field, in declaration order."""
        out = {}
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
            out[f.name] = f"{default!r}: {f.metadata.get('help', '')}"
        return out

    def store(self, name: str, value: Any) -> None:
        """Store a normalised field value on the frozen instance (for `__post_init__`)."""
        object.__setattr__(self, name, value)
