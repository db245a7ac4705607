"""The published one-shot table of the MNIST MLP 784-40-20-10 reproduced in its own setting: full MNIST, an SGD
recipe, every layer pruned under one global count, each method in its published configuration, no retraining.

Yu et al. (CBS, ICML 2022) prune a checkpoint trained for 25 epochs (`mnist_25_epoch_93.97.ckpt`) with WoodFisher on the
full-network Fisher of 10,000 single-example gradients, damping 1e-3, all three layers ("fc1_fc2_fc3") sharing one
count; Benbaki et al. (CHITA, ICML 2023) use the same network and table. `PRESETS` holds what each of the lab's
methods runs with here, and every row of the result says it (`config`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..training.train import TrainConfig
from ..util import checks
from ..util.config import Config, option
from . import second_order
from .oneshot import OneShotConfig

# the trainer of the reference's MNIST-MLP config (IST-DASLab/WoodFisher, configs/mlpnet_mnist_config_one_shot_woodburry_
# fisher.yaml: SGD, lr 0.001, momentum 0.5; batch 64 in its scripts) for the 25 epochs its checkpoint's name states
RECIPE = TrainConfig(optimizer="sgd", lr=0.001, momentum=0.5, batch_size=64, epochs=25, schedule="constant")
SPARSITIES = (0.8, 0.9, 0.95, 0.98)
# method/scope label -> its options here (the published configuration where one was published)
PRESETS: dict[str, dict] = {
    "magnitude/global": {},
    "woodfisher/global": {"samples": 10000, "damp": 1e-3, "damping": "absolute", "block_size": "network",
                          "update": "independent"},  # yuxwind/CBS, scripts/sweep_mnist_mlpnet_woodfisher.sh
    "obc/global": {"samples": 1024},
    "sparsegpt/global": {"samples": 1024},
    "chita/global": {"samples": 1000},
    "chita_pp/global": {"samples": 1000},
}
SETTING = "mnist_mlp_published"


@dataclass(frozen=True)
class PublishedConfig(Config):
    """What the published-table study runs: the dense recipe, the methods with their options, sparsities, seeds."""

    train: TrainConfig = option(RECIPE, "dense recipe (the reference's: SGD lr 0.001, momentum 0.5, batch 64, 25 epochs)")
    methods: tuple = option(tuple(PRESETS), "method/scope labels; options from PRESETS unless score_options has them")
    score_options: dict = option({}, "options per method name, over PRESETS")
    sparsities: tuple = option(SPARSITIES, "fractions of all prunable weights removed (the published table's)")
    seeds: tuple = option((0, 1, 2, 3, 4), "replicate seeds: validation split, initialisation, data order, samples")
    dataset: str = option("mnist", "mnist (full MNIST, `oneshot-lab data mnist`) or mnist_subset (a smoke run)")

    def __post_init__(self) -> None:
        """Validate every field (methods and options through the registry) before any work."""
        super().__post_init__()
        checks.one_of("dataset", self.dataset, ("mnist", "mnist_subset"))
        self.store("seeds", tuple(checks.listing("seeds", self.seeds, checks.seed, distinct=True)))
        self.study()

    def options(self) -> dict[str, dict]:
        """{method name: options}: the presets of the chosen methods, overridden by `score_options`."""
        out: dict[str, dict] = {}
        for label in self.methods:
            name = label.partition("/")[0]
            out[name] = {**out.get(name, {}), **PRESETS.get(label, {})}
        for name, given in checks.mapping("score_options", self.score_options).items():
            out[name] = {**out.get(name, {}), **checks.mapping(f"score_options[{name!r}]", given)}
        return out

    def study(self) -> OneShotConfig:
        """The one-shot study (no fine-tune: the table is one shot, no retraining)."""
        return OneShotConfig(methods=tuple(self.methods), sparsities=tuple(self.sparsities),
                             score_options=self.options(), seed=0)

    def setting(self) -> second_order.Setting:
        """The one setting: the MLP 784-40-20-10 on the chosen data with the dense recipe."""
        return second_order.Setting(name=SETTING, dataset=self.dataset, model="mlp", model_options={"widths": [40, 20]},
                                    train=self.train, sparsities=tuple(self.sparsities))


def run(config: PublishedConfig, root: str | None = None, progress: bool = False,
        workers: int | None = 1) -> second_order.Comparison:
    """Every method at every sparsity on every seed's dense network (paired on the seed), one shot.

    Seeds run on `workers` processes (default one: WoodFisher's 10,000-sample Fisher takes gigabytes per process).
    """
    PublishedConfig.checked("config", config)
    return second_order.run([config.setting()], config.study(), list(config.seeds), root=root, progress=progress,
                            workers=workers)
