"""The dense-run cache: a hit is the run itself (weights and history), anything that differs is a miss."""

import copy
import os

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.training import fit_cache, fit_key, fit_store, train

CONFIG = ol.TrainConfig(iterations=30, batch_size=16, lr=1e-2, eval_every=10, seed=3)


@pytest.fixture(autouse=True)
def key_file_home(tmp_path_factory, monkeypatch):
    """This user's key file in a fresh config directory: the tests need no writable HOME and leave none behind."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """The cache turned on in a fresh directory; counts the real trainings."""
    monkeypatch.setenv(fit_store.ENV, str(tmp_path))
    calls = []
    real = fit_cache.fit
    monkeypatch.setattr(fit_cache, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    return tmp_path, calls


@pytest.fixture()
def user_code(tmp_path, monkeypatch):
    """Write modules of user code (`name=source`) into an importable directory; they are forgotten afterwards."""
    import sys

    code, names = tmp_path / "code", []
    code.mkdir()
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)

    def write(**sources: str):
        """Write each module (again: an edit) and return the directory."""
        for name, source in sources.items():
            (code / f"{name}.py").write_text(source)
            if name not in names:
                names.append(name)
                sys.modules.pop(name, None)
        return code

    yield write
    for name in names:
        sys.modules.pop(name, None)


def test_hit_is_the_run_itself(cache, synthetic, tiny_mlp):
    """Second call loads: the same weights bit for bit and the same history, with no training."""
    root, calls = cache
    oracle = copy.deepcopy(tiny_mlp)
    expected = train.fit(oracle, synthetic, CONFIG, progress=False)
    first, second = copy.deepcopy(tiny_mlp), copy.deepcopy(tiny_mlp)
    fit_cache.cached_fit(first, synthetic, CONFIG)
    history = fit_cache.cached_fit(second, synthetic, CONFIG)
    assert len(calls) == 1
    for a, b in zip(oracle.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert history.frame().equals(expected.frame())
    assert [p.name for p in root.iterdir()] == [f"{fit_cache.key(tiny_mlp, synthetic, CONFIG)}.pt"]  # no partial file


@pytest.mark.parametrize("change", ["config", "seed_of_init", "data", "architecture", "masks"])
def test_anything_that_differs_is_a_miss(cache, synthetic, tiny_mlp, change):
    """A different config, initialisation, data split or architecture trains again."""
    _, calls = cache
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    model, data, config, masks = copy.deepcopy(tiny_mlp), synthetic, CONFIG, None
    if change == "masks":
        masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(model), 0.5, "global")
    elif change == "config":
        config = CONFIG.replace(lr=2e-2)
    elif change == "seed_of_init":
        model = ol.build("mlp", synthetic, seed=1, widths=(16, 8))
    elif change == "data":
        data = ol.load("synthetic", seed=1)
    else:
        model = ol.build("mlp", synthetic, seed=0, widths=(16, 8), activation="tanh")
    assert fit_cache.key(model, data, config, masks) != fit_cache.key(tiny_mlp, synthetic, CONFIG)
    fit_cache.cached_fit(model, data, config, masks)
    assert len(calls) == 2


def test_unreadable_entry_is_recomputed(cache, synthetic, tiny_mlp):
    """A truncated entry is trained again and replaced, never loaded."""
    root, calls = cache
    path = root / f"{fit_cache.key(tiny_mlp, synthetic, CONFIG)}.pt"
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="is not an entry of this cache"):
        fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert len(calls) == 1 and path.read_bytes().startswith(fit_store.MAGIC)


def test_off_trains_every_time(monkeypatch, tmp_path, synthetic, tiny_mlp):
    """ONESHOT_LAB_CACHE=off: nothing is written, every call trains."""
    monkeypatch.setenv(fit_store.ENV, "off")
    monkeypatch.chdir(tmp_path)
    assert fit_store.directory() is None
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert not any(tmp_path.iterdir())


def test_default_directory_is_the_user_cache(monkeypatch, tmp_path):
    """Unset: under $XDG_CACHE_HOME (or ~/.cache)."""
    monkeypatch.delenv(fit_store.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fit_store.directory() == tmp_path / "oneshot_lab" / "fits"


def test_replicate_reuses_dense_runs(cache, synthetic):
    """A second one-shot study over the same seeds trains no dense model and gives the same dense rows."""
    _, calls = cache
    study = ol.studies.oneshot.OneShotConfig(methods=("magnitude/global",), sparsities=(0.5,))
    first = ol.studies.oneshot.replicate("synthetic", "mlp", CONFIG, study, [0, 1], {"widths": (8,)}, workers=0, progress=False)
    again = ol.studies.oneshot.replicate("synthetic", "mlp", CONFIG, study.replace(sparsities=(0.9,)), [0, 1], {"widths": (8,)},
                                 workers=0, progress=False)
    assert len(calls) == 2
    dense = lambda r: r.metrics[r.metrics.stage == "dense"].reset_index(drop=True)
    assert dense(first).equals(dense(again))
    assert first.histories.equals(again.histories)


def test_masked_hit_keeps_the_mask_binding(cache, synthetic, tiny_mlp):
    """A masked run loaded from the cache equals the trained one, pruned entries exactly zero."""
    _, calls = cache
    masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(tiny_mlp), 0.7, "global")
    oracle = masks.apply(copy.deepcopy(tiny_mlp))
    train.fit(oracle, synthetic, CONFIG, masks=masks, progress=False)
    for _ in range(2):
        net = masks.apply(copy.deepcopy(tiny_mlp))
        fit_cache.cached_fit(net, synthetic, CONFIG, masks)
    assert len(calls) == 1
    for name, value in oracle.state_dict().items():
        assert torch.equal(value, net.state_dict()[name])
    for name, mask in masks.items():
        assert not net.get_parameter(name)[~mask].any()


def test_a_repeated_study_trains_nothing(cache, synthetic):
    """The same one-shot study twice: the second run reuses every dense run and fine-tune, same metrics."""
    _, calls = cache
    study = ol.studies.oneshot.OneShotConfig(methods=("magnitude/global", "random/layer"), sparsities=(0.5, 0.8),
                                     finetune=CONFIG.replace(iterations=10, eval_every=5))
    run = lambda: ol.studies.oneshot.replicate("synthetic", "mlp", CONFIG, study, [0, 1], {"widths": (8,)}, workers=0,
                                       progress=False)
    first = run()
    trained = len(calls)
    assert trained == 2 + 2 * 2 * 2
    again = run()
    assert len(calls) == trained
    assert first.metrics.equals(again.metrics) and first.histories.equals(again.histories)


def test_custom_forward_is_part_of_the_key(synthetic):
    """Two user classes with the same layers but another forward() never share an entry."""
    from torch import nn

    class Relu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 4)

        def forward(self, x):
            return torch.relu(self.fc(x.flatten(1)))

    class Tanh(Relu):
        def forward(self, x):
            return torch.tanh(self.fc(x.flatten(1)))

    torch.manual_seed(0)
    a = Relu()
    b = Tanh()
    b.load_state_dict(a.state_dict())
    assert fit_cache.key(a, synthetic, CONFIG) != fit_cache.key(b, synthetic, CONFIG)


def test_unwritable_cache_only_warns(monkeypatch, tmp_path, synthetic, tiny_mlp):
    """A cache directory that cannot be written: the run still returns its history, with a warning."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(fit_store.ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write"):
        history = fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert not history.frame().empty


# Issue 24: a fit cache that is only ever an accelerator.

def same_weights(a, b) -> bool:
    """Bit-identical state dicts."""
    return a.state_dict().keys() == b.state_dict().keys() and all(
        torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def plain_fit(model, data=None, config=CONFIG):
    """The oracle: a fresh train.fit of a copy of `model`; (trained copy, history frame)."""
    net = copy.deepcopy(model)
    return net, train.fit(net, data, config, progress=False).frame()


BASE = '''import torch
from torch import nn


def act(x):
    return torch.relu(x)


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(20, 8), nn.Linear(8, 4)

    def forward(self, x):
        return self.b(act(self.a(x.flatten(1))))
'''


def test_inherited_forward_and_its_module_helper_are_in_the_key(cache, synthetic, user_code):
    """Issue 24: a subclass inheriting forward() from a base class in another module that calls a module-level
    helper; relu -> tanh in the helper returned the relu weights (only the subclass's source was hashed)."""
    import importlib

    _, calls = cache
    code = user_code(i24_base=BASE, i24_net="from i24_base import Base\n\n\nclass Net(Base):\n    pass\n")
    import i24_base
    import i24_net

    torch.manual_seed(0)
    relu = i24_net.Net()
    first = fit_cache.key(relu, synthetic, CONFIG)
    fit_cache.cached_fit(copy.deepcopy(relu), synthetic, CONFIG)
    (code / "i24_base.py").write_text(BASE.replace("relu", "tanh"))
    edited = fit_cache.key(relu, synthetic, CONFIG)  # the file changed, the running code did not
    importlib.reload(i24_base)
    importlib.reload(i24_net)
    tanh = i24_net.Net()
    tanh.load_state_dict(relu.state_dict())
    assert len({first, edited, fit_cache.key(tanh, synthetic, CONFIG)}) == 3
    assert fit_cache.key(relu, synthetic, CONFIG) == fit_cache.key(tanh, synthetic, CONFIG)  # both call tanh now
    net = copy.deepcopy(tanh)
    history = fit_cache.cached_fit(net, synthetic, CONFIG)
    oracle, frame = plain_fit(tanh, synthetic)
    assert len(calls) == 2 and same_weights(net, oracle) and history.frame().equals(frame)


def test_a_frozen_layer_is_in_the_key(cache, synthetic, tiny_mlp):
    """Issue 24: requires_grad_(False) on a layer was not in the key (the frozen layer came back trained)."""
    _, calls = cache
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    frozen = copy.deepcopy(tiny_mlp)
    frozen[1].requires_grad_(False)
    net = copy.deepcopy(frozen)
    fit_cache.cached_fit(net, synthetic, CONFIG)
    assert len(calls) == 2 and torch.equal(net[1].weight, tiny_mlp[1].weight)
    assert same_weights(net, plain_fit(frozen, synthetic)[0])


class Noisy(torch.nn.Module):
    """A user module whose forward draws from torch's global generator."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(20, 4)

    def forward(self, x):
        return self.fc(x.flatten(1) + 0.1 * torch.randn_like(x.flatten(1)))


@pytest.mark.parametrize("kind", ["dropout", "user_forward"])
def test_runs_that_draw_from_the_global_generator_are_not_kept(cache, synthetic, kind):
    """Issue 24: the global RNG state was not in the key for dropout; such runs are trained every time (never kept),
    and each equals a fresh fit from the same generator state."""
    root, calls = cache
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20, 16), torch.nn.Dropout(0.5),
                                torch.nn.Linear(16, 4)) if kind == "dropout" else Noisy()
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = copy.deepcopy(model)
        fit_cache.cached_fit(net, synthetic, CONFIG)
        torch.manual_seed(seed)
        assert same_weights(net, plain_fit(model, synthetic)[0])
    assert len(calls) == 2 and not list(root.iterdir())


@pytest.mark.parametrize("change", ["cpu_model", "capability", "torch_build"])
def test_the_machine_and_the_torch_build_are_in_the_key(synthetic, tiny_mlp, monkeypatch, change):
    """Issue 24: the CPU model / instruction set and the torch build were not in the key."""
    before = fit_cache.key(tiny_mlp, synthetic, CONFIG)
    target = {"cpu_model": (fit_key, "cpu_model"), "capability": (torch.backends.cpu, "get_cpu_capability"),
              "torch_build": (torch.__config__, "show")}[change]
    monkeypatch.setattr(*target, lambda: "another machine")
    fit_key.build.cache_clear()
    try:
        assert fit_cache.key(tiny_mlp, synthetic, CONFIG) != before
    finally:
        monkeypatch.undo()
        fit_key.build.cache_clear()
    assert fit_cache.key(tiny_mlp, synthetic, CONFIG) == before


def plant(kind: str, path, tmp_path, synthetic, tiny_mlp):
    """Put a bad entry of `kind` at `path` (the entry name of tiny_mlp's run); a victim file a link points to."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    if kind == "corrupt":
        fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
    elif kind == "wrong_type":
        torch.save([1, 2, 3], path)
    elif kind == "old_format":
        torch.save({"state": ol.build("mlp", synthetic, widths=(4,)).state_dict(), "rows": []}, path)
    elif kind == "poisoned":
        other = ol.build("mlp", synthetic, seed=5, widths=(16, 8))
        fit_cache.cached_fit(copy.deepcopy(other), synthetic, CONFIG)
        path.write_bytes((path.parent / f"{fit_cache.key(other, synthetic, CONFIG)}.pt").read_bytes())
    elif kind == "forged":
        import io
        buffer = io.BytesIO()
        torch.save({"state": {"w": torch.zeros(2)}, "rows": [1]}, buffer)
        path.write_bytes(fit_store.pack(path.stem, buffer.getvalue()))
    elif kind in ("repacked", "other_users"):  # the right model's shapes, zeroed, under a checksum anyone can make
        import hashlib
        import hmac
        import io
        buffer = io.BytesIO()
        torch.save({"state": {k: torch.zeros_like(v) for k, v in tiny_mlp.state_dict().items()}, "rows": []}, buffer)
        payload, name = buffer.getvalue(), path.stem
        mac = (hashlib.sha256(payload).hexdigest() if kind == "repacked" else
               hmac.new(b"k" * 32, name.encode() + b"\n" + payload, hashlib.sha256).hexdigest())
        path.write_bytes(b"%s %s %s %d\n" % (fit_store.MAGIC, name.encode(), mac.encode(), len(payload)) + payload)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        path.symlink_to(victim)
    return victim


@pytest.mark.parametrize("kind", ["corrupt", "wrong_type", "old_format", "poisoned", "forged", "repacked",
                                  "other_users", "fifo", "symlink"])
def test_a_bad_entry_is_a_miss_with_one_warning_and_is_replaced(cache, synthetic, tiny_mlp, tmp_path, kind):
    """Issue 24: a wrong-type entry failed every later run (TypeError, KeyError, size mismatch), a poisoned one was
    used silently, a FIFO blocked forever. Now: one warning, a fresh training, the entry replaced (then a hit)."""
    import signal

    root, calls = cache
    path = root / f"{fit_cache.key(tiny_mlp, synthetic, CONFIG)}.pt"
    victim = plant(kind, path, tmp_path / "..", synthetic, tiny_mlp)
    trained = len(calls)
    signal.signal(signal.SIGALRM, lambda *a: pytest.fail("blocked on the entry"))
    signal.alarm(20)
    try:
        with pytest.warns(UserWarning, match="trained again and replaced") as caught:
            net = copy.deepcopy(tiny_mlp)
            history = fit_cache.cached_fit(net, synthetic, CONFIG)
    finally:
        signal.alarm(0)
    assert len([w for w in caught if "fit cache" in str(w.message)]) == 1
    oracle, frame = plain_fit(tiny_mlp, synthetic)
    assert len(calls) == trained + 1 and same_weights(net, oracle) and history.frame().equals(frame)
    assert victim.read_bytes() == b"precious" and path.is_file() and not path.is_symlink()
    again = copy.deepcopy(tiny_mlp)
    fit_cache.cached_fit(again, synthetic, CONFIG)
    assert len(calls) == trained + 1 and same_weights(again, oracle)


def check_degrades(root, synthetic, tiny_mlp, match: str) -> None:
    """Two fits against a failing cache: both trained, equal to plain fits, one warning in all, no temporary file."""
    with pytest.warns(UserWarning, match=match) as caught:
        for _ in range(2):
            net = copy.deepcopy(tiny_mlp)
            history = fit_cache.cached_fit(net, synthetic, CONFIG)
            oracle, frame = plain_fit(tiny_mlp, synthetic)
            assert same_weights(net, oracle) and history.frame().equals(frame)
    assert len([w for w in caught if "fit cache" in str(w.message)]) == 1
    assert not [p for p in root.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("fault", ["read_only", "full"])
def test_a_read_only_or_full_cache_only_slows_down(monkeypatch, tmp_path, synthetic, tiny_mlp, fault):
    """Issue 24: a read-only cache ('Read-only file system') and a full disk (RuntimeError from torch.save, and
    .partial files left) failed the run. Real tmpfs mounts (skipped where this machine cannot mount one)."""
    from test_faults import tmpfs

    with tmpfs(tmp_path / "mnt", "64k", read_only=fault == "read_only") as mount:
        if fault == "full":
            (mount / "filler").write_bytes(b"x" * 60_000)
        monkeypatch.setenv(fit_store.ENV, str(mount))
        check_degrades(mount, synthetic, tiny_mlp, "could not write in .*(Read-only|No space)")


@pytest.mark.parametrize("fault", ["denied", "write_denied", "rename_fails", "save_fails"])
def test_permission_denied_or_a_failed_write_only_slows_down(monkeypatch, tmp_path, synthetic, tiny_mlp, fault):
    """Issue 24: permission denied on every access or on writing (simulated: the tests run as root) and a write
    failing once its temporary file exists (a full disk) train without the cache, with one warning, and leave no
    temporary file."""
    import errno

    monkeypatch.setenv(fit_store.ENV, str(tmp_path))
    real_open = os.open

    def denied(path, flags, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and (fault == "denied" or flags & os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(source))

    def torch_save(*args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    if fault == "rename_fails":
        monkeypatch.setattr(os, "replace", full)
    elif fault == "save_fails":  # what a full disk raised from torch.save before
        monkeypatch.setattr(torch, "save", torch_save)
    else:
        monkeypatch.setattr(os, "open", denied)
    match = "could not read .*could not write" if fault == "denied" else "could not write in .*(Permission|No space|fail)"
    check_degrades(tmp_path, synthetic, tiny_mlp, match)


def test_a_planted_link_at_a_temporary_name_is_never_followed(cache, synthetic, tiny_mlp, tmp_path, monkeypatch):
    """Issue 24: a symlink planted at the temporary '.partial' name was followed and its target overwritten.
    Links at the old predictable name and at the next name the cache draws: the victim is untouched."""
    root, calls = cache
    name = f"{fit_cache.key(tiny_mlp, synthetic, CONFIG)}.pt"
    victim = tmp_path.parent / f"{tmp_path.name}_victim"
    victim.write_bytes(b"precious")
    (root / f".{name}.{os.getpid()}.partial").symlink_to(victim)
    tokens = iter(["a" * 16, "b" * 16])
    monkeypatch.setattr(fit_store.secrets, "token_hex", lambda n: next(tokens))
    (root / f".{name[:-3]}.{'a' * 16}.partial").symlink_to(victim)
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert victim.read_bytes() == b"precious"
    assert (root / name).read_bytes().startswith(fit_store.MAGIC)
    assert not (root / f".{name[:-3]}.{'b' * 16}.partial").exists()


@pytest.mark.parametrize("value", ["off", "OFF", "no", "false", "0", "none", "disable", "disabled", " Off "])
def test_switch_words_that_mean_off(monkeypatch, tmp_path, value):
    """Issue 24: ONESHOT_LAB_CACHE=no created a directory called 'no'."""
    monkeypatch.setenv(fit_store.ENV, value)
    monkeypatch.chdir(tmp_path)
    assert fit_store.directory() is None and not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["yes", "on", "true", "1", "enable", "enabled", "y", "default"])
def test_other_switch_words_are_refused_with_the_accepted_ones(monkeypatch, value):
    """A switch-like value that does not mean off is a one-line ValueError naming the accepted values."""
    monkeypatch.setenv(fit_store.ENV, value)
    with pytest.raises(ValueError, match=f"'{value}' looks like a switch.*off, no, false, 0, none, disable") as err:
        fit_store.directory()
    assert "\n" not in str(err.value)
    monkeypatch.setenv(fit_store.ENV, f"./{value}")
    assert fit_store.directory().name == value


@pytest.mark.parametrize("text,size", [("500MB", 500 * 10**6), ("2GiB", 2 * 2**30), ("1000", 1000), ("1.5 gb", 1.5e9),
                                       ("64k", 64_000), ("1PB", 10**15)])
def test_cache_max_sizes(text, size):
    assert fit_store.parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1", "0", "5XB", "1e9", ""])
def test_bad_cache_max_is_refused(monkeypatch, text):
    monkeypatch.setenv(fit_store.ENV_MAX, text)
    if not text:
        assert fit_store.max_bytes() == fit_store.parse_size(fit_store.DEFAULT_MAX)
        return
    with pytest.raises(ValueError, match=f"ONESHOT_LAB_CACHE_MAX='{text}'.*500MB.*KiB"):
        fit_store.max_bytes()


def test_the_size_cap_evicts_the_least_recently_used(cache, synthetic, tiny_mlp, monkeypatch):
    """Above ONESHOT_LAB_CACHE_MAX the least recently used entries go; a hit makes an entry recent again."""
    root, calls = cache
    configs = {name: CONFIG.replace(lr=lr) for name, lr in (("a", 1e-2), ("b", 2e-2), ("c", 3e-2))}
    paths = {n: root / f"{fit_cache.key(tiny_mlp, synthetic, c)}.pt" for n, c in configs.items()}
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, configs["a"])
    monkeypatch.setenv(fit_store.ENV_MAX, str(int(2.5 * paths["a"].stat().st_size)))
    for name in ("b", "a", "c"):  # "a" is a hit: the most recent but one afterwards
        fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, configs[name])
    assert len(calls) == 3
    assert {n for n, p in paths.items() if p.exists()} == {"a", "c"}
    assert sum(e[1] for e in fit_store.entries(root)) <= fit_store.max_bytes()


def test_leftover_temporary_files_are_cleaned_and_others_kept(cache, synthetic, tiny_mlp):
    """A temporary file left by a killed process (older than an hour) goes at the next write; other files stay."""
    root, _ = cache
    old, fresh = root / f".{'0' * 64}.pt.123.partial", root / f".{'1' * 64}.{'c' * 16}.partial"
    mine = root / "notes.txt"
    for path in (old, fresh, mine):
        path.write_text("x")
    os.utime(old, (0, 0))
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert not old.exists() and fresh.exists() and mine.exists()
    assert fit_store.clear(root)[0] == 1 and not fresh.exists() and mine.exists()


class Scaled(torch.nn.Module):
    """A user module with a plain attribute its forward uses."""

    def __init__(self, scale: float):
        super().__init__()
        self.fc, self.scale = torch.nn.Linear(20, 4), scale

    def forward(self, x):
        return self.fc(x.flatten(1)) * self.scale


def test_plain_attributes_are_in_the_key_and_what_it_cannot_describe_is_never_kept(cache, synthetic, monkeypatch):
    """A plain attribute (not a parameter or buffer) changes the key; hooks and a class without a source file
    (defined in a notebook) make a model uncacheable: trained every time, nothing written."""
    import sys
    import types

    root, calls = cache
    torch.manual_seed(0)
    one, two = Scaled(1.0), Scaled(2.0)
    two.load_state_dict(one.state_dict())
    assert fit_cache.key(one, synthetic, CONFIG) != fit_cache.key(two, synthetic, CONFIG)
    hooked = copy.deepcopy(one)
    hooked.fc.register_forward_hook(lambda module, inputs, output: output * 3)
    notebook = types.ModuleType("i24_notebook")
    monkeypatch.setitem(sys.modules, "i24_notebook", notebook)
    loose = type("Loose", (Scaled,), {"__module__": "i24_notebook"})(1.0)
    for model in (hooked, loose):
        with pytest.raises(fit_key.Uncacheable):
            fit_key.key(model, synthetic, CONFIG)
        for _ in range(2):
            fit_cache.cached_fit(copy.deepcopy(model), synthetic, CONFIG)
    assert len(calls) == 4 and not list(root.iterdir())


def test_an_entry_above_the_cap_is_not_written(cache, synthetic, tiny_mlp, monkeypatch, recwarn):
    """An entry larger than ONESHOT_LAB_CACHE_MAX is not kept (and nothing is evicted for it); no warning."""
    root, calls = cache
    monkeypatch.setenv(fit_store.ENV_MAX, "1000")
    for _ in range(2):
        fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert len(calls) == 2 and not list(root.iterdir()) and not recwarn.list


STATEFUL = '''import numpy as np
import torch
from torch import nn

CFG = {"act": "relu"}
ACT = torch.relu
SCALE = torch.tensor(1.0)
SHIFT = np.zeros(2)


def helper(x):
    return (ACT(x) if CFG["act"] == "relu" else torch.tanh(x)) * SCALE + float(SHIFT.sum())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 16), nn.Linear(16, 3)

    def forward(self, x):
        from i24_lazy import shift  # a helper imported inside forward, not at module level
        return self.fc2(shift(helper(self.fc1(x.flatten(1)))))
'''


@pytest.mark.parametrize("change", ["dict", "alias", "tensor", "ndarray", "lazy import"])
def test_module_state_the_code_reads_and_modules_it_imports_late_are_in_the_key(user_code, monkeypatch, change):
    """Issue 24 battery: a module-level dict changed in place, an alias rebound (torch.relu -> torch.tanh), a tensor
    filled in place, and the file of a module imported inside forward() edited, each kept the key (stale hits)."""

    user_code(i24_state=STATEFUL, i24_lazy="def shift(x):\n    return x\n")
    import i24_state

    data = ol.load("synthetic", seed=0)
    torch.manual_seed(0)
    net = i24_state.Net()
    net(data.train.x[:2])  # the lazy import has happened, as after any forward pass
    before = fit_cache.key(net, data, CONFIG)
    assert fit_cache.key(net, data, CONFIG) == before
    if change == "dict":
        monkeypatch.setitem(i24_state.CFG, "act", "tanh")
    elif change == "alias":
        monkeypatch.setattr(i24_state, "ACT", torch.tanh)
    elif change == "tensor":
        i24_state.SCALE.fill_(3.0)
    elif change == "ndarray":
        i24_state.SHIFT[0] = 1.0
    else:
        user_code(i24_lazy="def shift(x):\n    return x + 1\n")
    assert fit_cache.key(net, data, CONFIG) != before


@pytest.mark.parametrize("value", ["itself", "deep", "large", "object"])
def test_module_state_beyond_what_the_key_can_describe_is_never_kept(cache, synthetic, user_code, value):
    """A module-level value the code reads that refers to itself (RecursionError failed the run), is nested too
    deep, holds too many values or is of a type the key cannot describe: Uncacheable, trained every time."""
    import time

    root, calls = cache
    glob = {"itself": "G = {}\nG['me'] = G", "deep": "G = [1]\nfor _ in range(50):\n    G = [G]",
            "large": "G = list(range(10 ** 6))", "object": "G = object()"}[value]
    user_code(i24_bounds=f"from torch import nn\n{glob}\n\n\nclass Net(nn.Module):\n"
                         "    def __init__(self):\n        super().__init__()\n"
                         "        self.fc = nn.Linear(20, 4)\n\n    def forward(self, x):\n"
                         "        return self.fc(x.flatten(1)) * float(bool(G))\n")
    import i24_bounds

    net = i24_bounds.Net()
    start = time.perf_counter()
    with pytest.raises(fit_key.Uncacheable, match="deeper than|type object"):
        fit_key.key(net, synthetic, CONFIG)
    assert time.perf_counter() - start < 2
    for _ in range(2):
        fit_cache.cached_fit(copy.deepcopy(net), synthetic, CONFIG)
    assert len(calls) == 2 and not list(root.glob("*.pt"))


def test_a_corrupt_entry_in_a_cache_it_cannot_write_is_not_said_to_be_replaced(cache, synthetic, tiny_mlp, monkeypatch):
    """Issue 24 battery: a read-only cache holding a corrupt entry warned 'trained again and replaced; could not
    write...'. Now the warning says 'trained again' and why it could not write, and the entry is as it was."""
    import errno

    root, calls = cache
    path = root / f"{fit_cache.key(tiny_mlp, synthetic, CONFIG)}.pt"
    path.write_bytes(b"not an entry")
    real_open = os.open

    def denied(name, flags, *args, **kwargs):
        if str(name).startswith(str(root)) and flags & os.O_WRONLY:
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.warns(UserWarning, match="trained again; could not write in .*Permission denied") as caught:
        fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert not [w for w in caught if "replaced" in str(w.message)]
    assert len(calls) == 1 and path.read_bytes() == b"not an entry"


@pytest.mark.parametrize("text", ["0.0000001", "9" * 400, "1e400", "2000PB"])
def test_a_cache_max_below_a_byte_or_absurdly_large_is_refused(monkeypatch, text):
    monkeypatch.setenv(fit_store.ENV_MAX, text)
    with pytest.raises(ValueError, match="ONESHOT_LAB_CACHE_MAX="):
        fit_store.max_bytes()


def test_the_key_file_is_made_private_and_a_key_file_not_this_users_own_turns_the_cache_off(
        cache, synthetic, tiny_mlp, tmp_path, monkeypatch):
    """Entries carry an HMAC under a per-user key kept outside the cache directory (made 0600 on first use); a key
    file others can read, a link or a directory in its place leaves the cache unused with one warning."""
    root, calls = cache
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    key_file = tmp_path / "config" / "oneshot_lab" / "fit-cache.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == fit_store.SECRET_BYTES
    assert len(list(root.glob("*.pt"))) == 1
    for bad in ("readable", "link", "directory"):
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / bad))
        path = fit_store.secret_path()
        path.parent.mkdir(parents=True)
        if bad == "readable":
            path.write_bytes(b"k" * fit_store.SECRET_BYTES)
            path.chmod(0o644)
        elif bad == "link":
            path.symlink_to(key_file)
        else:
            path.mkdir()
        fit_cache.WARNED.clear()
        check_degrades(root, synthetic, tiny_mlp, "fit-cache.key cannot be used")
