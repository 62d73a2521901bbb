import numpy as np
import pytest
import torch

from conftest import seeds_from, three_regions
from dipseg.dip.augment import Views, flip_average
from dipseg.dip.config import FitConfig, NetworkConfig
from dipseg.dip.fit import fit

TINY = NetworkConfig((8, 8, 8), (8, 8, 8), (4, 4, 4))


@pytest.mark.parametrize("flip, scale", [(True, 1.0), (False, 0.6), (True, 0.6)])
def test_views_move_the_labelled_points_with_the_image(flip, scale):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(30.0), torch.arange(40.0), indexing="ij")
    # a smooth image, so that resampling a crop changes values by little
    image = torch.stack([0.5 + 0.4 * torch.sin(xx / 7), 0.5 + 0.4 * torch.cos(yy / 5), (xx + yy) / 70])[None]
    x = torch.cat([torch.rand(1, 2, 30, 40, generator=g), image - 0.5], 1)  # as make_input
    # points at pixel centres, in grid_sample coordinates (x, y)
    ys, xs = np.array([3, 15, 27]), np.array([5, 20, 33])
    grid = torch.tensor(np.stack([(xs + 0.5) / 40 * 2 - 1, (ys + 0.5) / 30 * 2 - 1], -1), dtype=torch.float32)
    grid = grid.view(1, 1, -1, 2)
    views = Views(FitConfig(views=4, view_flip=flip, view_scale=scale, view_colour=0.0), g, slice(2, 5))
    vb = views.batch(x, image, None, grid)
    assert vb.inputs.shape == (4, 5, 30, 40) and vb.images.shape == (4, 3, 30, 40)
    assert bool(vb.valid[0].all())
    original = torch.nn.functional.grid_sample(image, grid, align_corners=False)[0, :, 0]
    seen = torch.nn.functional.grid_sample(vb.images, vb.grid, align_corners=False)[:, :, 0]
    for v in range(4):  # what a view shows at a point is what the image shows there
        ok = vb.valid[v]
        torch.testing.assert_close(seen[v][:, ok], original[:, ok], atol=0.03, rtol=0)
    torch.testing.assert_close(vb.inputs[:, 2:5] + 0.5, vb.images)  # the input's image channels moved too


def test_colour_change_applies_to_input_and_target_alike():
    g = torch.Generator().manual_seed(1)
    image = torch.full((1, 3, 16, 16), 0.5)
    x = torch.cat([torch.zeros(1, 1, 16, 16), image - 0.5], 1)
    grid = torch.zeros(1, 1, 1, 2)
    vb = Views(FitConfig(views=3, view_scale=1.0, view_colour=0.3), g, slice(1, 4)).batch(x, image, None, grid)
    assert not torch.allclose(vb.images[1], vb.images[0])
    torch.testing.assert_close(vb.inputs[:, 1:] + 0.5, vb.images)
    assert torch.equal(vb.inputs[:, :1], x[:, :1].expand(3, -1, -1, -1))  # noise channels keep their values


def test_flip_average_of_a_symmetric_input_is_symmetric():
    from dipseg.dip.network import SkipNet

    net = SkipNet(3, 2, TINY).train()
    x = torch.rand(1, 3, 16, 16)
    x = (x + x.flip(-1)) / 2
    with torch.no_grad():
        avg = flip_average(net, x)
    torch.testing.assert_close(avg, avg.flip(-1))


def test_fit_with_views_and_test_time_flips_still_segments():
    img, gt = three_regions(48)
    labels = seeds_from(gt, 5)
    before = labels.copy()
    cfg = FitConfig(iterations=60, working_size=48, input="noise+image+xy", pairwise_weight=0.5, views=3,
                    tta_flip=True)
    res = fit(img, labels, TINY, cfg, seed=0)
    assert (res.classes == gt).mean() > 0.9
    np.testing.assert_array_equal(labels, before)
    again = fit(img, labels, TINY, cfg, seed=0)
    np.testing.assert_array_equal(res.probabilities, again.probabilities)


def test_no_network_uses_priors_and_refinement_alone():
    img, gt = three_regions(48, noise=4)
    labels = seeds_from(gt, 5)
    cfg = FitConfig(iterations=50, working_size=48, use_network=False, refine="random-walk", refine_strength=1e-6)
    res = fit(img, labels, TINY, cfg, seed=0)
    assert res.iterations == 0 and (res.classes == gt).mean() > 0.9


@pytest.mark.parametrize("bad", [{"views": 0}, {"view_scale": 0.0}, {"view_scale": 1.5}, {"view_colour": -1}])
def test_bad_view_settings(bad):
    with pytest.raises(ValueError, match="views must be"):
        FitConfig(**bad)
