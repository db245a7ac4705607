"""The one registry of pruning methods: every way of choosing weights to remove is a `Method` entry.

A method either scores weights (`score`: low scores are pruned, turned into masks by the registry's one
selection rule, torch.nn.utils.prune's rounding and tie order) or prunes and updates the survivors itself
(`run`). Studies, IMP, the explorer, sweeps and `oneshot-lab params` ask only this registry.

Built-in methods are defined in `criteria` (scores) and `updating` (weight updates); a user adds one with
`register(Method(...))`, or ships it in a package under the entry-point group `oneshot_lab.methods`
(`[project.entry-points."oneshot_lab.methods"] name = "module:METHOD"`, the object a `Method` or a sequence of
them), so that it is there in every fresh kernel and sweep worker.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ..core.masks import SCOPES, check_scope
from ..util import checks, rules
from ..util.plugins import GROUP
from ..util.rules import Rule

BUILTIN = ("oneshot_lab.pruning.criteria", "oneshot_lab.pruning.updating")  # modules defining `METHODS`
MISSING = ("a method of your own must be registered in this process (ol.register) or installed as a package "
           f"with an entry point in the group {GROUP!r}")
NEEDS = ("data", "trained")  # training examples; a trained network (the method's model assumes a minimum)


@dataclass(frozen=True)
class Option:
    """One keyword option of a method: its default, a one-line help, and the values it accepts.

    `rule` (a `util.rules.Rule`) defaults to the lab's rule for the name (`rules.for_name`: samples, damp,
    batch_size, probes, block_size, ...), so a conventional option is checked exactly as a notebook parameter
    of that name is; a default of None makes it optional.
    """

    name: str
    default: Any
    help: str
    rule: Rule | None = None

    def __post_init__(self) -> None:
        """Find the rule of a conventional name, and refuse an option whose own default it would reject."""
        rule = self.rule if self.rule is not None else rules.for_name(self.name)
        if rule is None:
            raise ValueError(f"option {self.name!r} has no rule: pass rule=ol.Rule(...) (its name is not one of the "
                             f"lab's conventional names)")
        object.__setattr__(self, "rule", rule.but(optional=True) if self.default is None else rule)
        self.check(self.default)

    def check(self, value: Any) -> Any:
        """`value` validated for this option (a one-line ValueError naming the value and what is accepted)."""
        return self.rule.check(self.name, value)

    def accepted(self) -> str:
        """The accepted values in words, e.g. 'an integer >= 1 or None'."""
        return self.rule.text()


@dataclass(frozen=True)
class Method:
    """A pruning method: what it is called, its options, what it needs, and how it prunes.

    Exactly one of `score` and `run` is given. `score(model, data, seed, **options) -> {parameter: scores}`
    (shaped like the prunable weights, low pruned first; the registry makes the masks); `run(request)` prunes
    the working copy `request.model` in place and returns its masks (or an `Outcome`; see `pruning.prune`).
    `updates_weights` says whether `run` moves the surviving weights. `supports(model, options) -> None |
    "why not"` refuses models the method cannot take, before any work.
    """

    name: str
    help: str
    score: Callable | None = None
    run: Callable | None = None
    options: tuple[Option, ...] = ()
    needs: tuple[str, ...] = ()
    updates_weights: bool = False
    supports: Callable[[Any, dict], str | None] | None = None
    source: str = field(default="", compare=False)  # where it is defined: a module, or a distribution

    def __post_init__(self) -> None:
        """Validate the entry itself (a plug-in's mistakes are reported when it is registered)."""
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a method name must be an identifier (letters, digits, _), got {self.name!r}")
        if (self.score is None) == (self.run is None):
            raise ValueError(f"method {self.name!r}: give exactly one of score= (scores, masked by the registry) "
                             f"and run= (prunes and updates weights itself)")
        unknown = sorted(set(self.needs) - set(NEEDS))
        if unknown:
            raise ValueError(f"method {self.name!r}: unknown need {unknown[0]!r}; needs are {', '.join(NEEDS)}")
        if self.updates_weights and self.run is None:
            raise ValueError(f"method {self.name!r}: a scoring method cannot update weights (give run=)")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names) or "seed" in names:
            raise ValueError(f"method {self.name!r}: option names must be distinct and not 'seed' (every "
                             f"method gets seed= from prune), got {names}")

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every option of this method with its value: `options` validated over the defaults."""
        options = checks.mapping(f"options of method {self.name!r}", options or {})
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"method {self.name!r} has no option {unknown[0]!r}; its options: "
                             f"{', '.join(known) or 'none'}")
        return {name: o.check(options[name]) if name in options else o.default for name, o in known.items()}

    def unsupported(self, model: Any, options: Mapping[str, Any] | None = None) -> str | None:
        """Why this method cannot prune `model` with `options`, or None if it can."""
        return None if self.supports is None else self.supports(model, self.check_options(options))

    def describe(self) -> str:
        """Several lines: name, help, kind, needs and every option with default, accepted values and help."""
        kind = ("updates the surviving weights" if self.updates_weights
                else "scores, then masks" if self.score is not None else "masks, no weight update")
        lines = [f"{self.name}: {self.help} ({kind}; needs: {', '.join(self.needs) or 'nothing'})"]
        lines += [f"    {o.name}={o.default!r}: {o.help} [{o.accepted()}]" for o in self.options]
        return "\n".join(lines)


class Registry(Mapping[str, Method]):
    """Name -> Method, filled on first use with the built-in methods and the installed plug-ins."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self._builtin: set[str] = set()
        self._loaded = False

    def _load(self) -> None:
        """Import the built-in modules and the entry points of `GROUP` (once per process)."""
        if self._loaded:
            return
        builtin = [method for module in BUILTIN for method in importlib.import_module(module).METHODS]
        self._loaded = True
        for method in builtin:
            self._methods[method.name] = method
            self._builtin.add(method.name)
        for point in metadata.entry_points(group=GROUP):
            try:
                loaded = point.load()
                for method in (loaded if isinstance(loaded, (list, tuple)) else [loaded]):
                    self.add(method, source=f"{point.value} (entry point {point.name!r})")
            except Exception as error:  # a broken plug-in must not break the lab: say which and go on
                warnings.warn(f"plug-in method {point.name!r} ({point.value}) could not be loaded: {error}",
                              stacklevel=2)

    def add(self, method: Method, source: str = "", replace: bool = False) -> Method:
        """Add `method`; a built-in name is only replaced with replace=True, a user's earlier entry always."""
        if not isinstance(method, Method):
            raise ValueError(f"register takes a oneshot_lab Method, got {type(method).__name__}")
        self._load()
        if method.name in self._builtin and not replace:
            raise ValueError(f"method {method.name!r} is built in; give yours another name (ol.register(..., "
                             f"replace=True) replaces it in this process only)")
        if source and not method.source:
            object.__setattr__(method, "source", source)
        self._methods[method.name] = method
        self._builtin.discard(method.name)
        return method

    def __getitem__(self, name: str) -> Method:
        self._load()
        return self._methods[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._methods)

    def __len__(self) -> int:
        self._load()
        return len(self._methods)

    def __repr__(self) -> str:
        return f"Registry({', '.join(self)})"


METHODS = Registry()


def register(method: Method, replace: bool = False) -> Method:
    """Add `method` to the registry of this process (re-running a notebook cell replaces its earlier entry)."""
    if not isinstance(method, Method):
        raise ValueError(f"register takes a oneshot_lab Method, got {type(method).__name__}")
    return METHODS.add(method, source=method.source or getattr(method.score or method.run, "__module__", ""),
                       replace=replace)


def get(name: Any) -> Method:
    """The method called `name`; the error lists every registered name."""
    if isinstance(name, str) and name not in METHODS and "/" not in name:
        raise ValueError(f"unknown method {name!r}; valid choices: {', '.join(METHODS)} ({MISSING})")
    return METHODS[checks.one_of("method", name, METHODS)]


def check_options(options: Mapping[str, Mapping] | None) -> dict[str, dict]:
    """`{method: {option: value}}` with every method name and option checked, each completed with its defaults."""
    options = checks.mapping("score_options", options or {})
    return {name: get(name).check_options(value) for name, value in options.items()}


def split_label(label: Any) -> tuple[str, str]:
    """('magnitude', 'global') from the label 'magnitude/global', both halves checked."""
    name, sep, scope = str(label).partition("/")
    if sep and scope in SCOPES and name not in METHODS:
        raise ValueError(f"unknown method {name!r} in {label!r}; {MISSING}; methods: {', '.join(METHODS)}")
    if not sep or name not in METHODS or scope not in SCOPES:
        raise ValueError(f"bad method {label!r}: write 'method/scope' with method in {{{', '.join(METHODS)}}} "
                         f"and scope in {{{', '.join(SCOPES)}}}")
    return name, scope


def labels(names: list[str], scopes: tuple[str, ...] = SCOPES) -> list[str]:
    """Every 'method/scope' label of `names` and `scopes`, method-major."""
    names = checks.listing("methods", names, lambda n, v: get(v).name, distinct=True)
    scopes = checks.listing("scopes", scopes, lambda n, v: check_scope(v), distinct=True)
    return [f"{name}/{scope}" for name in names for scope in scopes]
