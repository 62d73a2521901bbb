"""Loss terms of the DIPSEG fit besides the RGB MSE and the cross-entropy at labelled pixels."""

from __future__ import annotations

import torch

OFFSETS = tuple((dy, dx) for d in (1, 3) for dy, dx in ((0, d), (d, 0), (d, d), (d, -d)))
"""Neighbour offsets of the pairwise term: the 8-neighbourhood at dilations 1 and 3."""


def _crops(h: int, w: int, dy: int, dx: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    ys, ye = max(dy, 0), h + min(dy, 0)
    xs, xe = max(dx, 0), w + min(dx, 0)
    return (slice(ys, ye), slice(xs, xe)), (slice(ys - dy, ye - dy), slice(xs - dx, xe - dx))


class PairwisePotts:
    """Appearance-weighted Potts relaxation over 8-neighbours at dilations 1 and 3.

    ``mean over offsets of mean_ij w_ij (1 - <p_i, p_j>)`` with
    ``w_ij = exp(-|I_i - I_j|^2 / 2 sigma^2)``: cheap to cut between pixels of different
    colour, expensive between similar ones, which propagates labels by appearance (a local
    version of Tang et al. 2018's CRF loss). The weights depend on the image only and are
    computed once per fit.

    Parameters
    ----------
    image_t : Tensor (1, 3, h, w)
        The image in [0, 1].
    sigma : float
        Colour bandwidth on the 0..1 RGB scale.
    """

    def __init__(self, image_t: torch.Tensor, sigma: float):
        h, w = image_t.shape[-2:]
        self.shape = (h, w)
        self.pairs = []
        for dy, dx in OFFSETS:
            a, b = _crops(h, w, dy, dx)
            i0, i1 = image_t[..., a[0], a[1]], image_t[..., b[0], b[1]]
            wgt = torch.exp(-((i0 - i1) ** 2).sum(1) / (2 * sigma**2))
            self.pairs.append((a, b, wgt / wgt.numel()))

    def __call__(self, prob: torch.Tensor) -> torch.Tensor:
        """The loss for class probabilities ``prob`` (1, k, h, w); a scalar tensor."""
        total = prob.new_zeros(())
        for a, b, wgt in self.pairs:
            p0, p1 = prob[..., a[0], a[1]], prob[..., b[0], b[1]]
            # sum(w) - sum(w <p0, p1>) == sum(w (1 - <p0, p1>)), one reduction fewer per offset
            total = total + wgt.sum() - (wgt * (p0 * p1).sum(1)).sum()
        return total / len(self.pairs)


def pairwise_potts(prob: torch.Tensor, image_t: torch.Tensor, sigma: float) -> torch.Tensor:
    """:class:`PairwisePotts` of ``image_t`` applied once to ``prob`` (1, k, h, w)."""
    return PairwisePotts(image_t, sigma)(prob)
