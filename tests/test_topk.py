"""topk.lowest picks exactly the set torch.topk(largest=False) picks, ties included, on every path."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from oneshot_lab.core import topk_kernels, topk
from oneshot_lab.pruning import criteria
from oneshot_lab.core.masks import Masks, masks_from_scores


def topk_set(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The oracle: the entries torch.topk(largest=False) returns, as a bool vector."""
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    if k:
        chosen[torch.topk(flat, k, largest=False).indices] = True
    return chosen


def vectors(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Continuous, tie-heavy, few-valued and -inf-holding vectors of length n."""
    gen = torch.Generator().manual_seed(seed)
    few = torch.randint(0, 30, (n,), generator=gen).float()
    few[torch.rand(n, generator=gen) < 0.3] = float("-inf")
    return {"continuous": torch.rand(n, generator=gen), "half-precision grid": torch.rand(n, generator=gen).half().float(),
            "five values": torch.randint(0, 5, (n,), generator=gen).float(), "with -inf": few}


@pytest.mark.parametrize("n", [7, 1000, topk.SMALL + 1, 100_003])
@pytest.mark.parametrize("seed", [0, 1])
def test_lowest_equals_topk(n, seed):
    for name, flat in vectors(n, seed).items():
        for k in sorted({0, 1, n // 64, n // 64 + 1, n // 3, n // 2, int(0.9 * n), n - 1, n}):
            assert torch.equal(topk.lowest(flat, k), topk_set(flat, k)), (name, n, k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_threshold_is_exact(dtype):
    """The k-th lowest value and the counts below and at it, against a full sort, over split pieces."""
    flat = vectors(200_000, 3)["half-precision grid"].to(dtype)
    pieces = [flat[:1_000], flat[1_000:150_000].reshape(100, -1), flat[150_000:]]
    for k in (1, 5, 77_777, 199_999, 200_000):
        t, below, tied = topk.threshold(pieces, k)
        assert t == flat.sort().values[k - 1]
        assert (below, tied) == (int((flat < t).sum()), int((flat == t).sum()))


@pytest.mark.parametrize("grid", [16, 256, None])
def test_global_masks_equal_global_unstructured_with_ties(grid):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 100))
    if grid:
        with torch.no_grad():
            for layer in (model[0], model[2]):
                layer.weight.mul_(grid).round_().div_(grid)
    for amount in (0.3, 0.9):
        ours = masks_from_scores(criteria.magnitude(model), amount, scope="global")
        reference = copy.deepcopy(model)
        torch_prune.global_unstructured([(reference[0], "weight"), (reference[2], "weight")],
                                        torch_prune.L1Unstructured, amount=amount)
        assert ours.equal(Masks.from_torch_prune(reference))


@pytest.mark.parametrize("seed", range(40))
def test_replayed_ties_are_those_topk_keeps(seed):
    """A few entries tied at the threshold, some but not all pruned: the replay of introselect decides."""
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(8, 3000, (1,), generator=gen))
    flat = torch.rand(n, generator=gen) if seed % 2 else torch.randint(0, 4, (n,), generator=gen).float()
    for k in sorted({n // 64 + 1, n // 3, n // 2, int(0.9 * n), n - 1} - {0}):  # k * 64 <= n: partial_sort
        threshold = flat.sort().values[k - 1]
        flat[torch.randint(n, (5,), generator=gen)] = threshold
        threshold = flat.sort().values[k - 1]
        ours = topk_kernels.chosen_with_ties([flat], k, threshold.item(), int((flat < threshold).sum()),
                                        int((flat == threshold).sum()))
        assert torch.equal(ours, topk_set(flat, k)), (n, k)


def test_lowest_replays_a_few_ties_on_large_vectors():
    gen = torch.Generator().manual_seed(5)
    flat = torch.rand(300_000, generator=gen)
    threshold = flat.kthvalue(270_000).values
    flat[torch.randint(300_000, (6,), generator=gen)] = threshold
    below, tied = int((flat < threshold).sum()), int((flat == threshold).sum())
    k = below + tied // 2  # some, not all, of the tied entries are pruned
    assert 0 < k - below < tied <= topk_kernels.MAX_TAGS
    assert torch.equal(topk.lowest(flat, k), topk_set(flat, k))


@pytest.mark.parametrize("n", [5_000, 70_001, 400_000])
@pytest.mark.parametrize("levels", [5, 40, 2_000])
def test_replay_on_larger_vectors_with_many_ties(n, levels):
    """Thousands of ties over many blocks of the compiled partition: still topk's own set."""
    gen = torch.Generator().manual_seed(n + levels)
    flat = torch.randint(0, levels, (n,), generator=gen).float()
    for k in (n // 3, n // 2 + 1, int(0.9 * n) + 1, n - 2):
        assert torch.equal(topk.lowest(flat, k), topk_set(flat, k)), (n, levels, k)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_ties_in_other_dtypes_match_topk(dtype):
    """float64 is replayed, float16 goes to torch.topk: both give topk's own set."""
    gen = torch.Generator().manual_seed(7)
    flat = torch.randint(0, 7, (50_000,), generator=gen).to(dtype)
    for k in (20_000, 45_001):
        assert torch.equal(topk.lowest(flat, k), topk_set(flat, k))


def test_global_masks_over_pieces_equal_concatenated_selection():
    """lowest_of over several tensors is the selection on their concatenation, cut back into shapes."""
    gen = torch.Generator().manual_seed(11)
    pieces = [torch.randint(0, 9, shape, generator=gen).float() for shape in [(300, 200), (7,), (50, 4, 3)]]
    flat = torch.cat([p.reshape(-1) for p in pieces])
    for k in (1, 5_000, 33_000, flat.numel() - 1):
        got = topk.lowest_of(pieces, k)
        assert [g.shape for g in got] == [p.shape for p in pieces]
        assert torch.equal(torch.cat([g.reshape(-1) for g in got]), topk_set(flat, k))


def test_mixed_dtypes_compare_in_the_promoted_dtype_as_topk_does():
    n = topk.SMALL
    a = torch.full((n,), 0.1, dtype=torch.float64)
    a[: n // 2] = 0.05
    b = torch.full((n,), 0.1, dtype=torch.float32)  # float32(0.1) > float64 0.1
    got = topk.lowest_of([a, b], n)
    assert torch.equal(torch.cat(got), topk_set(torch.cat([a, b.double()]), n))
    assert int(got[1].sum()) == 0


def test_empty_pieces_and_bad_mask_shapes():
    scores = {"w": torch.rand(100, 400), "empty": torch.rand(5, 0)}
    masks = masks_from_scores(scores, 0.5)
    assert masks["empty"].shape == (5, 0) and int((~masks["w"]).sum()) == 20_000
    with pytest.raises(ValueError, match=r"mask 'w' has shape \(1, 400\) but its scores have \(100, 400\)"):
        masks_from_scores(scores, 0.5, masks={"w": torch.ones(1, 400, dtype=torch.bool)})


def test_the_replay_checks_itself_against_this_torch():
    assert topk_kernels.replay_agrees()
