"""Data augmentation during the fit: a batch of views of the image per step, and test-time flips.

Every view applies one geometric transform (a horizontal flip, a crop rescaled to the
working size) and one colour change (brightness and contrast) *consistently* to everything
the loss sees: the network's input (noise, image and coordinate channels alike), the RGB
target, the box prior and the positions of the labelled pixels. View 0 is always the
image itself; the others are drawn anew at every step from the fit's generator.

BatchNorm runs in training mode on the whole batch, so the views share its statistics. A
flipped copy has exactly the statistics of the original, which is why the final
prediction may average the image and its mirror image (``tta_flip``) without changing
what the network saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .config import FitConfig


@dataclass
class ViewBatch:
    """One step's views.

    Attributes
    ----------
    inputs : Tensor (V, C, h, w)
    images : Tensor (V, 3, h, w)
        RGB targets in [0, 1].
    priors : Tensor (V, k, h, w) or None
    grid : Tensor (V, 1, P, 2)
        The labelled pixels' positions in each view (``grid_sample`` coordinates).
    valid : Tensor (V, P) bool
        Whether a labelled pixel lies inside the view.
    """

    inputs: torch.Tensor
    images: torch.Tensor
    priors: torch.Tensor | None
    grid: torch.Tensor
    valid: torch.Tensor


class Views:
    """Draws :class:`ViewBatch` es for a fit (``cfg.views`` views per step).

    Parameters
    ----------
    cfg : FitConfig
        ``views``, ``view_flip``, ``view_scale`` and ``view_colour`` are used.
    generator : torch.Generator
        The fit's generator (views are seeded by the fit's seed).
    image_channels : slice or None
        Which input channels hold the image (they get the colour change too).
    """

    def __init__(self, cfg: FitConfig, generator: torch.Generator, image_channels: slice | None):
        self.n = cfg.views
        self.flip, self.scale, self.colour = cfg.view_flip, cfg.view_scale, cfg.view_colour
        self.gen = generator
        self.image_channels = image_channels

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen, device=self.gen.device)

    def batch(self, x: torch.Tensor, image: torch.Tensor, prior: torch.Tensor | None, grid: torch.Tensor) -> ViewBatch:
        """Views of input ``x`` (1, C, h, w), ``image`` (1, 3, h, w), ``prior`` (1, k, h, w), points ``grid`` (1, 1, P, 2)."""
        v = self.n - 1
        dev = x.device
        # affine maps from view coordinates to image coordinates: p_img = s * p_view + t
        s = 1 - (1 - self.scale) * self._rand(v)
        t = (1 - s)[:, None] * (2 * self._rand(v, 2) - 1)
        sign = torch.where(self._rand(v) < 0.5, -1.0, 1.0) if self.flip else torch.ones(v, device=dev)
        theta = torch.zeros(v, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 1, 1] = s * sign, s
        theta[:, :, 2] = t
        sample = F.affine_grid(theta, [v, 1, *x.shape[-2:]], align_corners=False)

        def warp(a: torch.Tensor) -> torch.Tensor:
            return F.grid_sample(a.expand(v, *a.shape[1:]), sample, mode="bilinear", padding_mode="border",
                                 align_corners=False)

        xv, imv = warp(x), warp(image)
        if self.colour > 0:
            gain = 1 + self.colour * (2 * self._rand(v, 1, 1, 1) - 1)
            shift = self.colour * 0.5 * (2 * self._rand(v, 1, 1, 1) - 1)
            imv = ((imv - 0.5) * gain + 0.5 + shift).clamp(0, 1)
            if self.image_channels is not None:
                ch = xv[:, self.image_channels]
                xv = torch.cat([xv[:, : self.image_channels.start], ch * gain + shift,
                                xv[:, self.image_channels.stop :]], 1)
        # labelled points: p_view = (p_img - t) / s, mirrored with the view
        p = grid[0, 0]  # (P, 2) as (x, y)
        pv = (p[None] - t[:, None]) / s[:, None, None]
        pv[..., 0] = pv[..., 0] * sign[:, None]
        valid = (pv.abs() <= 1).all(-1)
        priors = None if prior is None else torch.cat([prior, warp(prior)])
        return ViewBatch(torch.cat([x, xv.contiguous(memory_format=torch.channels_last)]), torch.cat([image, imv]),
                         priors, torch.cat([grid, pv[:, None]]),
                         torch.cat([torch.ones(1, p.shape[0], dtype=torch.bool, device=dev), valid]))


def flip_average(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class logits of ``x`` (1, C, h, w) averaged with those of its mirror image (flipped back)."""
    _, logits = model(torch.cat([x, x.flip(-1)]))
    return (logits[:1] + logits[1:].flip(-1)) / 2
