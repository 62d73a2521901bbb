import numpy as np
import pytest

from dipseg.features import RW_BETA, edge_weights, enlarge_box, label_box, lab_features


def test_lab_features_scale_and_smoothing():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, 5:] = 255
    lab = lab_features(img)
    assert lab.shape == (10, 10, 3)
    assert lab[0, 0, 0] == pytest.approx(0.0, abs=1e-6) and lab[0, 9, 0] == pytest.approx(1.0, abs=1e-3)
    smooth = lab_features(img, smooth=1.0)
    assert 0 < smooth[0, 4, 0] < 1  # the step is blurred
    np.testing.assert_array_equal(img[:, 5:], 255)  # input untouched


def test_edge_weights_are_small_across_edges_only():
    img = np.zeros((8, 12, 3), np.uint8)
    img[:, 6:] = (200, 30, 30)
    wy, wx = edge_weights(img, RW_BETA, smooth=0)
    assert wy.shape == (7, 12) and wx.shape == (8, 11)
    assert wx[:, 5].max() < 1e-3 and wx[:, 0].min() > 0.99 and wy.min() > 0.99


def test_label_box_and_enlargement():
    mask = np.zeros((20, 30), bool)
    mask[5:10, 10:20] = True
    assert label_box(mask) == (5, 10, 10, 20)
    assert enlarge_box((5, 10, 10, 20), 0.5, (20, 30)) == (2.5, 12.5, 5.0, 25.0)
    assert enlarge_box((5, 10, 10, 20), 0.5, (20, 30), whole_pixels=True) == (3, 12, 5, 25)  # round-half-even
    assert enlarge_box((0, 20, 0, 30), 1.0, (20, 30)) == (0, 20, 0, 30)  # clipped to the image
    with pytest.raises(ValueError, match="empty mask"):
        label_box(np.zeros((3, 3), bool))


def test_grid_cells_groups_pixels_by_cells_of_the_longest_side():
    from dipseg.features import grid_cells

    ys, xs = np.array([0, 3, 4, 0, 99]), np.array([0, 3, 0, 4, 199])
    cells = grid_cells(ys, xs, (100, 200), cell=0.02)  # 4-px cells
    assert cells[0] == cells[1] and len(set(cells.tolist())) == 4
    assert len(np.unique(grid_cells(ys, xs, (100, 200), cell=0.5))) == 2  # 100-px cells
