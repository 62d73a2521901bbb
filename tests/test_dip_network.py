import pytest
import torch

from dipseg.dip.config import NetworkConfig
from dipseg.dip.network import SkipNet, conv_flops
from dipseg.dip.presets import PRESETS


@pytest.mark.parametrize("shape", [(32, 32), (37, 51), (20, 64)])
@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
def test_output_shapes_any_size(shape, upsample):
    cfg = NetworkConfig((8, 8, 8), (8, 8, 8), (2, 0, 2), upsample=upsample)
    net = SkipNet(5, 4, cfg)
    with torch.no_grad():
        rgb, logits = net(torch.rand(1, 5, *shape))
    assert rgb.shape == (1, 3, *shape) and logits.shape == (1, 4, *shape)
    assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1


def test_structure_follows_official_skip():
    net = SkipNet(32, 21, NetworkConfig())
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # per scale: skip 1x1, down 3x3 s2, 3x3, up 3x3, up 1x1 -> 5 x 5, plus the head
    assert len(convs) == 26
    assert sum(m.stride == (2, 2) for m in convs) == 5
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in net.modules())
    assert net.head.out_channels == 24


def test_paper_preset_widths():
    n = PRESETS["paper"].network
    assert n.channels_down == (128,) * 5 and n.channels_up == (128,) * 5 and n.depth == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels_down": (8, 8), "channels_up": (8,), "channels_skip": (0, 0)}, "same, non-zero length"),
        ({"upsample": "bicubic"}, "upsample"),
        ({"channels_down": (0,) * 5}, "positive"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetworkConfig(**kwargs)


def test_flops_scale_with_area():
    net = SkipNet(32, 2, NetworkConfig((8, 8), (8, 8), (2, 2)))
    assert conv_flops(net, (1, 32, 64, 64)) == pytest.approx(4 * conv_flops(net, (1, 32, 32, 32)), rel=0.05)


@pytest.mark.parametrize("shape", [(32, 32), (37, 51)])
def test_deep_decoder_is_a_decoder_of_1x1_convolutions(shape):
    cfg = NetworkConfig((8, 8, 8), (8, 16, 32), (0, 0, 0), decoder="deep-decoder")
    net = SkipNet(5, 3, cfg)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.kernel_size == (1, 1) for m in convs) and len(convs) == 4  # 3 scales + the head
    with torch.no_grad():
        rgb, logits = net(torch.rand(1, 5, *shape))
    assert rgb.shape == (1, 3, *shape) and logits.shape == (1, 3, *shape)


def test_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="decoder must be"):
        NetworkConfig(decoder="unet")
