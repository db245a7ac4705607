"""Models: shapes from the dataset, plain Sequential, seeded init, clear errors."""

import pytest
import torch
from torch import nn

import oneshot_lab as ol


@pytest.mark.parametrize("dataset,model", [("mnist1d", "conv1d"), ("mnist1d", "mlp"), ("mnist1d", "lenet_300_100"),
                                           ("digits", "lenet5"), ("digits", "mlp"), ("synthetic", "mlp")])
def test_output_shape_and_plain_sequential(dataset, model):
    data = ol.load(dataset)
    net = ol.build(model, data)
    assert type(net) is nn.Sequential
    assert net(data.test.x[:3]).shape == (3, data.num_classes)
    for module in net.modules():
        assert not getattr(module, "inplace", False), module


def test_lenet_300_100_architecture():
    net = ol.build("lenet_300_100", ol.load("digits"))
    shapes = [tuple(p.shape) for n, p in net.named_parameters() if n.endswith("weight")]
    assert shapes == [(300, 64), (100, 300), (10, 100)]


def test_mlp_widths_and_activation(synthetic):
    net = ol.build("mlp", synthetic, widths=(7, 5), activation="tanh")
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [7, 5, 4]
    assert sum(isinstance(m, nn.Tanh) for m in net) == 2


def test_seeded_init_is_deterministic_and_leaves_global_rng(synthetic):
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    a, b = ol.build("mlp", synthetic, seed=3), ol.build("mlp", synthetic, seed=3)
    assert torch.equal(torch.rand(1), expected)
    c = ol.build("mlp", synthetic, seed=4)
    for (_, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(p, q) and not torch.equal(p, r)


def test_bad_names_and_shapes_are_clear(synthetic):
    with pytest.raises(ValueError, match="unknown model 'resnet'.*lenet_300_100.*lenet5.*conv1d.*mlp"):
        ol.build("resnet", synthetic)
    with pytest.raises(ValueError, match="lenet5 needs 2-D images"):
        ol.build("lenet5", synthetic)
    with pytest.raises(ValueError, match="conv1d needs 1-D signals"):
        ol.build("conv1d", synthetic)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        ol.build("mlp", synthetic, activation="gelu")
    with pytest.raises(ValueError, match="model 'conv1d' has no option 'widths'; its options: channels, activation"):
        ol.build("conv1d", ol.load("mnist1d"), widths=(3,))
