"""Builders: the network and its fixed input for a configuration (as SAM's ``build_sam.py``)."""

from __future__ import annotations

import torch

from .config import FitConfig, NetworkConfig, input_channels, working_shape
from .network import SkipNet, conv_flops


def make_input(image_t: torch.Tensor, cfg: FitConfig, generator: torch.Generator) -> torch.Tensor:
    """The fixed network input for an image at working resolution.

    Parameters
    ----------
    image_t : Tensor (1, 3, h, w) float in [0, 1]
    cfg : FitConfig
        ``input``, ``input_channels`` and ``input_scale`` are used.
    generator : torch.Generator
        Draws the noise (seeded by the fit).

    Returns
    -------
    Tensor (1, input_channels(cfg), h, w)
        Uniform noise in ``[0, input_scale)``, then the image minus 0.5, then y and x in
        ``[-0.5, 0.5]``, as ``cfg.input`` asks (:func:`image_channels` says where the image is).
    """
    _, _, h, w = image_t.shape
    noise = torch.rand((1, cfg.input_channels, h, w), generator=generator, device=image_t.device) * cfg.input_scale
    parts = [noise]
    if "image" in cfg.input:
        parts.append(image_t - 0.5)
    if cfg.input.endswith("xy"):
        ys = torch.linspace(-0.5, 0.5, h, device=image_t.device).view(1, 1, h, 1).expand(1, 1, h, w)
        xs = torch.linspace(-0.5, 0.5, w, device=image_t.device).view(1, 1, 1, w).expand(1, 1, h, w)
        parts += [ys, xs]
    return torch.cat(parts, 1)


def image_channels(cfg: FitConfig) -> slice | None:
    """Which channels of :func:`make_input`'s tensor hold the image (None if it has none)."""
    return slice(cfg.input_channels, cfg.input_channels + 3) if "image" in cfg.input else None


def build_network(network: NetworkConfig, config: FitConfig, num_classes: int) -> SkipNet:
    """A freshly initialised skip network for ``config``'s input and ``num_classes`` logits."""
    return SkipNet(input_channels(config), num_classes, network)


def gflop_per_step(network: NetworkConfig, config: FitConfig, shape: tuple[int, int], num_classes: int) -> float:
    """Approximate GFLOP of one training step (forward + backward ~ 3x forward convs)."""
    h, w = working_shape(shape, config.working_size)
    cin = input_channels(config)
    return 3 * conv_flops(build_network(network, config, num_classes), (1, cin, h, w)) / 1e9
