"""The Deep Image Prior "skip" encoder-decoder (Ulyanov, Vedaldi, Lempitsky, CVPR 2018).

A re-implementation of ``models/skip.py`` of the official code with explicit modules
instead of nested ``Sequential`` objects. At each scale ``i`` the input splits in two:

* skip branch: 1x1 conv -> BN -> LeakyReLU (``skip[i]`` channels; 0 = no skip);
* deep branch: 3x3 conv stride 2 -> BN -> act -> 3x3 conv -> BN -> act ->
  (next scale) -> upsample x2;

then: concatenate -> BN -> 3x3 conv -> BN -> act -> (1x1 conv -> BN -> act).
The head is a 1x1 conv to ``3 + K`` channels: sigmoid RGB plus ``K`` class logits.
All convolutions use reflection padding, as in the official notebooks.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import NetworkConfig


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Module:
    pad = (k - 1) // 2
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=0, bias=True)
    return nn.Sequential(nn.ReflectionPad2d(pad), conv) if pad else conv


def _cba(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """conv -> BatchNorm -> LeakyReLU(0.2)."""
    return nn.Sequential(_conv(cin, cout, k, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class _Scale(nn.Module):
    """One scale of the skip network; ``inner`` is the next, coarser scale (or None)."""

    def __init__(self, cin: int, cfg: NetworkConfig, i: int):
        super().__init__()
        down, up, skip, k = cfg.channels_down[i], cfg.channels_up[i], cfg.channels_skip[i], cfg.filter_size
        self.skip = _cba(cin, skip, 1) if skip else None
        self.down = nn.Sequential(_cba(cin, down, k, stride=2), _cba(down, down, k))
        self.inner = _Scale(down, cfg, i + 1) if i + 1 < cfg.depth else None
        deep = cfg.channels_up[i + 1] if self.inner is not None else down
        self.mode = cfg.upsample
        self.bn = nn.BatchNorm2d(skip + deep)
        layers = [_cba(skip + deep, up, k)]
        if cfg.need_1x1_up:
            layers.append(_cba(up, up, 1))
        self.up = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        if self.inner is not None:
            y = self.inner(y)
        y = F.interpolate(y, size=x.shape[-2:], mode=self.mode, **({"align_corners": False} if self.mode == "bilinear" else {}))
        if self.skip is not None:
            y = torch.cat([self.skip(x), y], dim=1)
        return self.up(self.bn(y))


class _DeepDecoder(nn.Module):
    """Heckel & Hand's deep decoder as a body: 1x1 conv -> upsample -> LeakyReLU -> BN per scale."""

    def __init__(self, cin: int, cfg: NetworkConfig):
        super().__init__()
        self.depth, self.mode = cfg.depth, cfg.upsample
        widths = list(reversed(cfg.channels_up))  # coarsest first
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip([cin, *widths[:-1]], widths))
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for b in widths)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = [x.shape[-2:]]
        for _ in range(self.depth):
            sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
        y = F.adaptive_avg_pool2d(x, sizes[-1])
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            size = sizes[self.depth - 1 - i]
            y = F.interpolate(conv(y), size=size, mode=self.mode,
                              **({"align_corners": False} if self.mode == "bilinear" else {}))
            y = norm(self.act(y))
        return y


class SkipNet(nn.Module):
    """DIP skip network (or a deep decoder, ``config.decoder``) with an RGB head and a class head.

    Parameters
    ----------
    in_channels : int
        Channels of the input tensor (32 noise channels in the official code).
    num_classes : int
        Number of class logits ``K``.
    config : NetworkConfig

    Notes
    -----
    ``forward`` maps ``(B, in_channels, H, W)`` to ``(rgb, logits)`` with shapes
    ``(B, 3, H, W)`` in [0, 1] and ``(B, K, H, W)``. Upsampling is to the exact size of
    the finer scale, so any ``H, W >= 2**depth`` works without cropping.
    """

    def __init__(self, in_channels: int, num_classes: int, config: NetworkConfig = NetworkConfig()):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.config = config
        self.num_classes = num_classes
        self.body = _DeepDecoder(in_channels, config) if config.decoder == "deep-decoder" else _Scale(in_channels, config, 0)
        self.head = nn.Conv2d(config.channels_up[0], 3 + num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.body(x))
        return torch.sigmoid(out[:, :3]), out[:, 3:]


def conv_flops(model: nn.Module, in_shape: tuple[int, int, int, int]) -> float:
    """Multiply-accumulates x2 of all convolutions for one forward pass (FLOP)."""
    total = 0.0

    def hook(mod: nn.Conv2d, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += 2.0 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(in_shape, device=next(model.parameters()).device))
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return total
