"""Loss terms of the DIPSEG fit besides the RGB MSE and the cross-entropy at labelled pixels."""

from __future__ import annotations

import torch


def pairwise_potts(prob: torch.Tensor, image_t: torch.Tensor, sigma: float) -> torch.Tensor:
    """Appearance-weighted Potts relaxation over 8-neighbours at dilations 1 and 3.

    ``sum w_ij (1 - <p_i, p_j>)`` with ``w_ij = exp(-|I_i - I_j|^2 / 2 sigma^2)``: cheap to
    cut between pixels of different colour, expensive between similar ones, which
    propagates labels by appearance (a local version of Tang et al. 2018's CRF loss).

    Parameters
    ----------
    prob : Tensor (1, k, h, w)
        Class probabilities.
    image_t : Tensor (1, 3, h, w)
        The image in [0, 1].
    sigma : float
        Colour bandwidth on the 0..1 RGB scale.

    Returns
    -------
    Tensor ()
        Mean over the 8 neighbour offsets.
    """
    total = prob.new_zeros(())
    count = 0
    for d in (1, 3):
        for dy, dx in ((0, d), (d, 0), (d, d), (d, -d)):
            h, w = prob.shape[-2:]
            ys, ye = max(dy, 0), h + min(dy, 0)
            xs, xe = max(dx, 0), w + min(dx, 0)
            p0 = prob[..., ys:ye, xs:xe]
            p1 = prob[..., ys - dy : ye - dy, xs - dx : xe - dx]
            i0 = image_t[..., ys:ye, xs:xe]
            i1 = image_t[..., ys - dy : ye - dy, xs - dx : xe - dx]
            wgt = torch.exp(-((i0 - i1) ** 2).sum(1) / (2 * sigma**2))
            total = total + (wgt * (1 - (p0 * p1).sum(1))).mean()
            count += 1
    return total / count
