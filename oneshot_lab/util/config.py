"""The base of every experiment's configuration: a frozen dataclass with field help, validated on creation."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a one-line `help` (shown by `Config.describe`)."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    if isinstance(default, Config):  # a fresh copy per instance: configs hold dicts
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata={"help": help},
                                 **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


class Config:
    """Mixin of frozen config dataclasses: `replace`, `as_dict`, `describe`; subclasses validate in `__post_init__`.

    Fields are validated on creation and on `replace`; a dict field (score_options, layer_rates) mutated in
    place afterwards is not validated again, so change configs with `replace`.
    """

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
