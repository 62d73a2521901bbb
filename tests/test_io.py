import numpy as np
import pytest
from PIL import Image

from dipseg.io import (
    InputError,
    TooLargeError,
    UnsupportedFormatError,
    decode_image,
    overlay,
    read_image,
    read_index_png,
    read_labels,
    write_labels,
    write_mask,
)
from dipseg.labels import IGNORE
from dipseg.palette import PALETTE, colourize


def _labels():
    lab = np.full((20, 30), IGNORE, np.int64)
    lab[2:5, 3:8] = 0
    lab[10:14, 20:25] = 15
    lab[18, 29] = 20
    return lab


def test_index_png_round_trip(tmp_path):
    lab = _labels()
    path = write_labels(tmp_path / "l.png", lab)
    with Image.open(path) as im:
        assert im.mode == "P"
    np.testing.assert_array_equal(read_labels(path, shape=(20, 30)), lab)


def test_grayscale_png(tmp_path):
    lab = _labels()
    Image.fromarray(np.where(lab < 0, 255, lab).astype(np.uint8), mode="L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "g.png"), lab)


def test_rgba_scribbles_round_trip(tmp_path):
    lab = _labels()
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = colourize(lab)
    rgba[..., 3] = np.where(lab >= 0, 255, 0)
    rgba[lab < 0, :3] = 0  # black with alpha 0 = unlabelled
    Image.fromarray(rgba, "RGBA").save(tmp_path / "s.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "s.png", shape=(20, 30)), lab)


def test_rgb_scribbles_void_colour_is_unlabelled(tmp_path):
    lab = _labels()
    Image.fromarray(colourize(lab)).save(tmp_path / "s.png")  # IGNORE drawn as the void colour
    np.testing.assert_array_equal(read_labels(tmp_path / "s.png"), lab)


def test_rgb_wrong_colour(tmp_path):
    rgb = np.full((10, 10, 3), 224, np.uint8)
    rgb[..., 2] = 192
    rgb[3, 4] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "s.png")
    with pytest.raises(InputError, match=r"label colour \(1, 2, 3\) at row 3, column 4 is not a class colour"):
        read_labels(tmp_path / "s.png")


def test_label_errors(tmp_path):
    with pytest.raises(InputError, match="label file not found"):
        read_labels(tmp_path / "nope.png")
    (tmp_path / "t.png").write_text("not a png")
    with pytest.raises(InputError, match="cannot read label"):
        read_labels(tmp_path / "t.png")
    Image.fromarray(np.full((5, 5), 255, np.uint8), mode="L").save(tmp_path / "e.png")
    with pytest.raises(InputError, match="no labelled pixel"):
        read_labels(tmp_path / "e.png")
    Image.fromarray(np.full((5, 5), 40, np.uint8), mode="L").save(tmp_path / "v.png")
    with pytest.raises(InputError, match="label value 40 is not a class"):
        read_labels(tmp_path / "v.png")
    Image.fromarray(np.zeros((5, 6), np.uint8), mode="L").save(tmp_path / "s.png")
    with pytest.raises(InputError, match="label map is 6x5"):
        read_labels(tmp_path / "s.png", shape=(5, 5))


def test_read_image_modes_and_limits(tmp_path):
    Image.fromarray(np.full((6, 7), 9, np.uint8), mode="L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (6, 7, 3) and img.dtype == np.uint8
    Image.fromarray(np.zeros((6, 7, 4), np.uint8), "RGBA").save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").shape == (6, 7, 3)
    with pytest.raises(InputError, match="more than the limit of 10"):
        read_image(tmp_path / "g.png", max_pixels=10)
    with pytest.raises(InputError, match="image file not found"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_truncated_image(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    data = (tmp_path / "x.png").read_bytes()
    (tmp_path / "y.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "y.png")


def test_mask_and_overlay(tmp_path):
    classes = np.zeros((8, 9), np.int64)
    classes[:, 5:] = 8
    path = write_mask(tmp_path / "m.png", classes)
    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), classes)
        assert tuple(np.asarray(im.convert("RGB"))[0, 8]) == tuple(PALETTE[8])
    img = np.full((8, 9, 3), 100, np.uint8)
    lab = np.full((8, 9), IGNORE)
    lab[4, 2] = 0
    ov = overlay(img, classes, lab)
    assert ov.shape == (8, 9, 3) and ov.dtype == np.uint8
    assert tuple(ov[4, 2]) == (0, 0, 0) and tuple(ov[3, 2]) == (255, 255, 255)


def test_decode_image_refuses_bombs_non_images_and_tiny_images(tmp_path):
    from io import BytesIO

    buf = BytesIO()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    assert decode_image(data).shape == (40, 50, 3)
    with pytest.raises(TooLargeError, match="more than the limit of 100"):
        decode_image(data, max_pixels=100)
    with pytest.raises(UnsupportedFormatError, match="not an image"):
        decode_image(b"hello, not an image")
    with pytest.raises(UnsupportedFormatError):
        decode_image(data, formats=["JPEG"])  # a PNG when only JPEG is allowed
    buf = BytesIO()
    Image.fromarray(np.zeros((1, 50, 3), np.uint8)).save(buf, format="PNG")
    with pytest.raises(InputError, match="at least 2x2"):
        decode_image(buf.getvalue())


def test_read_index_png_wants_palette_or_grayscale(tmp_path):
    write_labels(tmp_path / "gt.png", np.array([[0, 1], [IGNORE, 2]]))
    np.testing.assert_array_equal(read_index_png(tmp_path / "gt.png"), [[0, 1], [255, 2]])
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="expected an index image"):
        read_index_png(tmp_path / "rgb.png")



def test_exif_orientation_is_applied_to_photos(tmp_path):
    # a phone photo stored sideways: 3 wide x 2 high pixels, EXIF orientation 6 (rotate 90 clockwise to view)
    stored = np.zeros((2, 3, 3), np.uint8)
    stored[0, 0] = (255, 0, 0)  # top-left as stored: red
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.png"
    Image.fromarray(stored).save(path, exif=exif)
    viewed = read_image(path)
    assert viewed.shape == (3, 2, 3)  # shown upright: 2 wide x 3 high
    assert tuple(viewed[0, 1]) == (255, 0, 0)  # rotated clockwise, the red corner is top-right
    assert np.array_equal(decode_image(path.read_bytes()), viewed)
    # without the tag nothing changes
    Image.fromarray(stored).save(tmp_path / "plain.png")
    assert np.array_equal(read_image(tmp_path / "plain.png"), stored)
