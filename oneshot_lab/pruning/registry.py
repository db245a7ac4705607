"""The one registry of pruning methods: every way of choosing weights to remove is a `Method` entry.

A method either scores weights (`score`: low scores are pruned, turned into masks by the registry's one
selection rule, torch.nn.utils.prune's rounding and tie order) or prunes and updates the survivors itself
(`run`). Studies, IMP, the explorer, sweeps and `oneshot-lab params` ask only this registry.

Built-in methods are defined in `criteria` (scores), `at_init` (SNIP, GraSP, SynFlow), `updating` and `chita`
(weight updates); a user adds one with `register(Method(...))`, or ships it in a package under the entry-point
group `oneshot_lab.methods` (`[project.entry-points."oneshot_lab.methods"] name = "module:METHOD"`, the object a
`Method` or a sequence of them), so that it is there in every fresh kernel and sweep worker.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ..core.masks import SCOPES, check_scope
from ..util import checks, rules
from ..util.plugins import GROUP
from ..util.rules import Rule

BUILTIN = ("oneshot_lab.pruning.criteria", "oneshot_lab.pruning.at_init",  # modules defining `METHODS`
           "oneshot_lab.pruning.updating", "oneshot_lab.pruning.chita")
MISSING = ("a method of your own must be registered in this process (ol.register) or installed as a package "
           f"with an entry point in the group {GROUP!r}")
RESERVED = ("seed", "model", "data", "sparsity", "method", "scope", "masks", "layer_sparsities", "scores")
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
        """Validate the entry itself (a plug-in's mistakes are reported when it is made, not when it runs)."""
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a method name must be an identifier (letters, digits, _), got {self.name!r}")
        if (self.score is None) == (self.run is None):
            raise ValueError(f"method {self.name!r}: give exactly one of score= (scores, masked by the registry) "
                             f"and run= (prunes and updates weights itself)")
        for what in ("score", "run", "supports"):
            if getattr(self, what) is not None and not callable(getattr(self, what)):
                raise ValueError(f"method {self.name!r}: {what}= must be a function, got {getattr(self, what)!r}")
        if not isinstance(self.needs, tuple) or set(self.needs) - set(NEEDS):
            raise ValueError(f"method {self.name!r}: needs must be a tuple of {', '.join(NEEDS)}, got {self.needs!r}")
        if not isinstance(self.updates_weights, bool) or (self.updates_weights and self.run is None):
            raise ValueError(f"method {self.name!r}: updates_weights must be True or False, and only a method with "
                             f"run= can update weights, got {self.updates_weights!r}")
        if not isinstance(self.options, tuple) or not all(isinstance(o, Option) for o in self.options):
            raise ValueError(f"method {self.name!r}: options must be a tuple of ol.Option, got {self.options!r}")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names) or set(names) & set(RESERVED):
            raise ValueError(f"method {self.name!r}: option names must be distinct and none of "
                             f"{', '.join(RESERVED)} (prune's own arguments), got {names}")
        self.check_signature()

    def check_signature(self) -> None:
        """Refuse a function that cannot take what the registry passes: (model, data, seed, **options) or (request)."""
        function, args = (self.score, (None, None, 0)) if self.score is not None else (self.run, (None,))
        try:
            inspect.signature(function).bind(*args, **{o.name: o.default for o in self.options if self.score})
        except TypeError as error:
            call = "score(model, data, seed, **options)" if self.score is not None else "run(request)"
            raise ValueError(f"method {self.name!r}: the registry calls {call}, which this function cannot "
                             f"take ({error})") from None
        except ValueError:  # a builtin without a signature: trusted
            pass

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

    def configuration(self, options: Mapping[str, Any] | None = None) -> str:
        """Every option with the value this run uses, e.g. 'samples=1024, damp=0.01' (a table's config column)."""
        return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                         for k, v in self.check_options(options).items()) or "no options"

    def describe(self) -> str:
        """Several lines: name, help, kind, needs and every option with default, accepted values and help."""
        kind = ("updates the surviving weights" if self.updates_weights
                else "scores, then masks" if self.score is not None else "masks, no weight update")
        lines = [f"{self.name}: {self.help} ({kind}; needs: {', '.join(self.needs) or 'nothing'})"]
        lines += [f"    {o.name}={o.default!r}: {o.help} [{o.accepted()}]" for o in self.options]
        return "\n".join(lines)


class Registry(Mapping[str, Method]):
    """Name -> Method, filled on first use with the built-in methods and the installed plug-ins (thread-safe)."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self._session: set[str] = set()  # registered in this process only: unknown to a fresh worker process
        self._lock = threading.RLock()
        self._loaded = False

    def _load(self) -> None:
        """Import the built-in modules and the entry points of `GROUP` (once per process)."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            for method in [m for module in BUILTIN for m in importlib.import_module(module).METHODS]:
                self._methods[method.name] = method
            for point in metadata.entry_points(group=GROUP):
                self._plug_in(point)
            self._loaded = True

    def _plug_in(self, point: metadata.EntryPoint) -> None:
        """Add the methods of one entry point, all of them or none (a broken plug-in warns, the lab goes on)."""
        try:
            loaded = point.load()
            methods = list(loaded) if isinstance(loaded, (list, tuple)) else [loaded]
            bad = [m for m in methods if not isinstance(m, Method)]
            if bad:
                raise ValueError(f"it holds {type(bad[0]).__name__}, not an ol.Method")
            clash = [m.name for m in methods if m.name in self._methods]
            if clash:
                raise ValueError(f"method {clash[0]!r} exists already ({self._methods[clash[0]].source})")
        except Exception as error:
            warnings.warn(f"plug-in method {point.name!r} ({point.value}) not loaded: {error}", stacklevel=4)
            return
        for method in methods:
            self._methods[method.name] = dataclasses.replace(
                method, source=f"{point.value} (entry point {point.name!r}, {getattr(point.dist, 'name', '?')})")

    def add(self, method: Method, replace: bool = False) -> Method:
        """Add `method` for this process; a built-in or plug-in name only with replace=True, your earlier entry always."""
        if not isinstance(method, Method) or not isinstance(replace, bool):
            raise ValueError(f"register takes a oneshot_lab Method and replace=True or False, got "
                             f"{type(method).__name__}, replace={replace!r}")
        self._load()
        with self._lock:
            if method.name in self._methods and method.name not in self._session and not replace:
                raise ValueError(f"method {method.name!r} exists ({self._methods[method.name].source}); give yours "
                                 f"another name (ol.register(..., replace=True) replaces it in this process only)")
            self._methods[method.name] = method
            self._session.add(method.name)
        return method

    def session_only(self, names: Iterable[str]) -> list[str]:
        """The `names` registered in this process only (`ol.register`), which a fresh worker process would not know."""
        self._load()
        return [name for name in names if name in self._session]

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
    """Add `method` to the registry of this process (re-running a notebook cell replaces its earlier entry).

    Studies run it in this process, not on worker processes, which would not know it: to have it everywhere,
    ship it as a plug-in (see the module docstring).
    """
    if isinstance(method, Method) and not method.source:
        method = dataclasses.replace(method, source=getattr(method.score or method.run, "__module__", "") or "session")
    return METHODS.add(method, replace=replace)


def workers_for(names: Iterable[str], workers: int | None) -> int | None:
    """`workers`, or 0 (this process) with a warning when one of the methods `names` was registered in this session
    only: a fresh worker process would not know it (results do not depend on the number of workers)."""
    local = METHODS.session_only(names)
    if local and workers != 0:
        warnings.warn(f"method(s) {', '.join(local)} registered with ol.register run in this process, not on worker "
                      f"processes (which would not know them); ship them as a plug-in (entry point group {GROUP!r}) "
                      f"to use workers", stacklevel=3)
        return 0
    return workers


def get(name: Any) -> Method:
    """The method called `name`; the error lists every registered name."""
    if isinstance(name, str) and "/" in name:
        raise ValueError(f"method {name!r}: give the method's name alone ({name.partition('/')[0]!r}); its scope "
                         f"is a separate argument here")
    if isinstance(name, str) and name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid choices: {', '.join(METHODS)} ({MISSING})")
    return METHODS[checks.one_of("method", name, METHODS)]


def check_options(options: Mapping[str, Mapping] | None) -> dict[str, dict]:
    """`{method: {option: value}}` with every method name and option checked, each completed with its defaults."""
    options = checks.mapping("score_options", options or {})
    out = {}
    for name, value in options.items():
        try:
            out[name] = get(name).check_options(value)
        except ValueError as error:
            raise ValueError(f"score_options[{name!r}]: {error}") from None
    return out


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
