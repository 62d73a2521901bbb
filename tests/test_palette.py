import numpy as np
import pytest
from PIL import Image

from dipseg.palette import PALETTE, UNLABELLED_RGB, colourize, encode_palette_png, palette_image, voc_palette


def test_palette_matches_voc():
    p = voc_palette()
    assert tuple(p[0]) == (0, 0, 0) and tuple(p[1]) == (128, 0, 0) and tuple(p[15]) == (192, 128, 128)
    assert tuple(p[255]) == (224, 224, 192) == UNLABELLED_RGB


def test_palette_png_stores_indices_and_colours():
    from io import BytesIO

    index = np.array([[0, 1, 15], [255, 20, 0]])
    img = Image.open(BytesIO(encode_palette_png(index)))
    assert img.mode == "P"
    np.testing.assert_array_equal(np.asarray(img), index)
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), PALETTE[index])


def test_colourize_shows_negative_values_as_void():
    np.testing.assert_array_equal(colourize(np.array([[-1, 2]])), [[PALETTE[255], PALETTE[2]]])


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.array([[0, 256]]), np.array([[-1, 0]])])
def test_palette_image_refuses_bad_maps(bad):
    with pytest.raises(ValueError, match="class map"):
        palette_image(bad)
