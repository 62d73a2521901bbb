import numpy as np
import pytest

from dipseg.labels import IGNORE, downscale_labels, labelled_classes, validate_image, validate_labels


def test_validate_labels_errors():
    with pytest.raises(ValueError, match="no labelled pixel"):
        validate_labels(np.full((4, 4), IGNORE))
    with pytest.raises(ValueError, match="is not a class"):
        validate_labels(np.full((4, 4), 30), num_classes=21)
    with pytest.raises(ValueError, match="integer"):
        validate_labels(np.zeros((4, 4), float))
    with pytest.raises(ValueError, match="label map is 5x4"):
        validate_labels(np.zeros((4, 5), int), shape=(4, 4))
    out = validate_labels(np.array([[0, -1], [2, 1]], np.int16))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(labelled_classes(out), [0, 1, 2])


@pytest.mark.parametrize(
    "img, match",
    [
        (np.zeros((4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((4, 4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        ([[0]], "numpy array"),
    ],
)
def test_validate_image_errors(img, match):
    with pytest.raises(ValueError, match=match):
        validate_image(img)


def test_downscale_labels_keeps_every_class():
    labels = np.full((100, 80), IGNORE)
    labels[3, 3] = 2
    labels[97, 77] = 7
    small = downscale_labels(labels, (10, 8))
    assert small[0, 0] == 2 and small[9, 7] == 7 and (small != IGNORE).sum() == 2
