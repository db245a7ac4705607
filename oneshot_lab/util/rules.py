"""The accepted values of the lab's conventional names, written once: the configs and the command line check with them.

A `Rule` says what a value may be (kind, bounds, choices, list items); `RULES` maps each conventional name
(seed, lr, sparsities, ...) to its rule, and `for_name` finds the rule of a longer name by its last words
(`finetune_epochs` is checked as `epochs`). Torch- and pandas-free: the command line imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import checks

KINDS = ("int", "float", "str", "bool", "list")


@dataclass(frozen=True)
class Rule:
    """The values a name accepts; `check` returns the value normalised (ints, floats, lists) or raises."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False  # minimum itself excluded (lr > 0)
    choices: tuple[str, ...] = ()  # a str's accepted values; an int's accepted words besides integers ("auto")
    item: Rule | None = None  # the rule of every item of a list
    distinct: bool = False  # a list may not hold a value twice
    nonempty: bool = True  # a list (or a text) may not be empty
    optional: bool = False  # None accepted
    note: str = ""  # what the value means, shown by `text`

    def __post_init__(self) -> None:
        """Refuse a rule that cannot be checked."""
        checks.one_of("rule kind", self.kind, KINDS)
        if self.item is not None and self.kind != "list":
            raise ValueError(f"only a list rule has an item rule, got kind {self.kind!r}")

    def check(self, name: str, value: Any) -> Any:
        """`value` normalised (int, float, list), or a one-line ValueError naming it and what is accepted."""
        if value is None and self.optional:
            return None
        if self.kind == "int" and self.choices:  # an integer, or one of the words
            if isinstance(value, str) and value in self.choices:
                return value
            try:
                return checks.integer(name, value, self.minimum, self.maximum)
            except ValueError:
                raise ValueError(f"{name} must be {self.text()}, got {checks.shown(value)}") from None
        if self.kind == "int":
            return checks.integer(name, value, self.minimum, self.maximum)
        if self.kind == "float":
            return checks.number(name, value, self.minimum, self.maximum, self.open_minimum)
        if self.kind == "list":
            item = self.item.check if self.item is not None else None
            return checks.listing(name, value, item, self.distinct, self.nonempty)
        if self.choices:
            return checks.one_of(name, value, self.choices)
        wrong = not isinstance(value, bool) if self.kind == "bool" else (
            not isinstance(value, str) or (self.nonempty and not value.strip()))
        if wrong:
            raise ValueError(f"{name} must be {self.text()}, got {value!r}")
        return value

    def text(self) -> str:
        """What the rule accepts, in a few words: 'an integer >= 1', 'a number in [0.0, 1.0]', ..."""
        if self.kind == "int":
            words = f"an integer{checks.bound_text(self.minimum, self.maximum)}"
            words += f" or one of {', '.join(self.choices)}" if self.choices else ""
        elif self.kind == "float":
            bound = f" > {self.minimum}" if self.open_minimum and self.maximum is None else \
                checks.bound_text(self.minimum, self.maximum)
            words = f"a number{bound}"
        elif self.kind == "list":
            each = f", each {self.item.text()}" if self.item is not None else ""
            words = (f"a {'non-empty ' if self.nonempty else ''}list"
                     f"{' of distinct values' if self.distinct else ''}{each}")
        elif self.choices:
            words = f"one of {', '.join(self.choices)}"
        elif self.kind == "bool":
            words = "True or False"
        else:
            words = "a non-empty text" if self.nonempty else "a text"
        return words + (" or None" if self.optional else "") + (f" ({self.note})" if self.note else "")

    def but(self, **changes: Any) -> Rule:
        """A copy with some attributes changed (e.g. `optional=True` for a field whose default is None)."""
        return dataclasses.replace(self, **changes)


# Upper bounds of counts: far beyond any run of the lab on a CPU, low enough that a slip (10**30) is refused
# before any work instead of overflowing a tensor size or running for ever.
MAX_STEPS = 10**8  # optimizer steps of one run (28 hours at a millisecond a step)
MAX_EPOCHS = 10**5
MAX_BATCH = 2**20  # examples per minibatch (the largest offline dataset has 70,000)
MAX_EXAMPLES = 10**7  # examples a method averages over
MAX_LEVELS = 100  # pruning rounds (at rate 0.2, 100 rounds leave 2e-10 of the weights)
MAX_UNITS = 10**5  # units or channels of one layer
MAX_WEIGHTS = 10**9  # weights of a model
MAX_WORKERS = 1024  # worker processes
MAX_SECONDS = 7 * 24 * 3600  # a cell's timeout: a week
LAB_SEED_OFFSET = 1000  # the most the lab adds to a replicate seed (notebook 03's data orders add 101 and 202)

SEED = Rule("int", 0, checks.SEED_MAX)
FRACTION = Rule("float", 0.0, 1.0)
FRACTIONS = Rule("list", item=FRACTION)
FRACTIONS_OR_EMPTY = Rule("list", item=FRACTION, nonempty=False, note="empty: all")
STEPS = Rule("int", 0, MAX_STEPS, note="optimizer steps")
STEP_LIST = Rule("list", item=STEPS)
SEEDS = Rule("list", item=SEED, distinct=True)

RULES: dict[str, Rule] = {
    # training
    "seed": SEED,
    "lr": Rule("float", 0.0, open_minimum=True),
    "momentum": FRACTION,
    "weight_decay": Rule("float", 0.0),
    "batch_size": Rule("int", 1, MAX_BATCH),
    "eval_every": Rule("int", 1, MAX_STEPS, note="optimizer steps"),
    "epochs": Rule("int", 0, MAX_EPOCHS),
    "iterations": STEPS,
    "iteration": STEPS,
    "optimizer": Rule("str", choices=("sgd", "adam")),
    "schedule": Rule("str", choices=("constant", "cosine", "step")),
    # pruning
    "sparsity": FRACTION,
    "sparsities": FRACTIONS,
    "fractions": FRACTIONS,
    "control_sparsities": FRACTIONS_OR_EMPTY,
    "rate": FRACTION,
    "samples": Rule("int", 1, MAX_EXAMPLES, note="training examples"),
    "curvature_samples": Rule("int", 0, MAX_EXAMPLES, note="training examples; 0: the whole training split"),
    "probes": Rule("int", 1, MAX_EXAMPLES),
    "damp": Rule("float", 0.0),
    "block_size": Rule("int", 1, MAX_UNITS),
    "max_weights": Rule("int", 1, MAX_WEIGHTS),
    "widths": Rule("list", item=Rule("int", 1, MAX_UNITS)),
    "channels": Rule("int", 1, MAX_UNITS),
    "model": Rule("str", choices=("lenet_300_100", "lenet5", "conv1d", "mlp")),
    "dataset": Rule("str", choices=("mnist1d", "digits", "mnist_subset", "synthetic", "mnist", "fashion_mnist")),
    "activation": Rule("str", choices=("relu", "tanh", "sigmoid")),
    # studies
    "seeds": SEEDS,
    "seed_offsets": SEEDS,
    "data_seeds": Rule("list", item=SEED, distinct=True, note="one data order per copy"),
    "budgets": Rule("list", item=Rule("int", 1, MAX_EPOCHS), nonempty=False, note="epochs"),
    "budget": Rule("int", 1, 1000, note="a multiple of the iterations"),
    "levels": Rule("int", 0, MAX_LEVELS),
    "level": Rule("int", 0, MAX_LEVELS),
    "budget_levels": Rule("list", item=Rule("int", 1, MAX_LEVELS), distinct=True, nonempty=False),
    "rewind": STEPS,
    "rewind_iterations": STEP_LIST,
    "instability_iterations": STEP_LIST,
    "points": Rule("int", 2, 10_000),
    "tolerance": Rule("float", 0.0),
    # analysis
    "label": Rule("str"),
    "column": Rule("str", nonempty=False, note="a column name"),
    "lower_is_better": Rule("bool"),
    # running
    "workers": Rule("int", 0, MAX_WORKERS, note="0: one per core"),
    "max_runs": Rule("int", 1, 10**6, note="runs one sweep spec may expand to"),
    "timeout": Rule("int", 1, MAX_SECONDS, optional=True, note="seconds per cell"),
}


def for_name(name: str) -> Rule | None:
    """The rule of `name`: its own entry, else that of its last underscore-separated words, else None."""
    words = str(name).split("_")
    return next((RULES[key] for key in ("_".join(words[i:]) for i in range(len(words))) if key in RULES), None)

# The keyword options of each model builder (`core.models.build`) and their rules: `build` checks with them.
MODEL_OPTIONS: dict[str, dict[str, Rule]] = {
    "lenet_300_100": {"activation": RULES["activation"]},
    "lenet5": {"activation": RULES["activation"]},
    "conv1d": {"channels": RULES["channels"], "activation": RULES["activation"]},
    "mlp": {"widths": RULES["widths"], "activation": RULES["activation"]},
}


def model_options(model: str, options: Any, name: str = "model_options") -> dict:
    """The keyword `options` of model `model`, each checked by its rule (one-line ValueError naming it)."""
    model = RULES["model"].check("model", model)
    options = checks.mapping(name, options)
    known = MODEL_OPTIONS[model]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"model {model!r} has no option {unknown[0]!r}; its options: {', '.join(known)}")
    return {key: known[key].check(key, value) for key, value in options.items()}


def derived_seeds(seed: Any, offsets: Any = (0,)) -> None:
    """Raise a one-line ValueError unless base `seed` plus each of `offsets` (the replicate seeds) leaves room
    for the `LAB_SEED_OFFSET` the lab may add to a replicate seed: every seed derived stays in [0, SEED_MAX]."""
    top = checks.SEED_MAX - LAB_SEED_OFFSET
    worst = max(offsets, default=0)
    if seed + worst > top:
        raise ValueError(f"seed {seed} + replicate offset {worst} = {seed + worst} is more than {top}: the lab derives "
                         f"seeds up to {LAB_SEED_OFFSET} above a replicate seed and every seed must be at most "
                         f"{checks.SEED_MAX}; choose a smaller seed")
