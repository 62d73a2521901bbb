import numpy as np
import pytest
from PIL import Image

from dipseg.io import (
    InputError,
    LabelWarning,
    TooLargeError,
    UnsupportedFormatError,
    decode_image,
    load_label_file,
    overlay,
    read_ground_truth,
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


# ----------------------------------------------------------------------------- high bit depths


def test_16_bit_gray_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]] * 3, np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"
    img = read_image(tmp_path / "g16.png")
    assert img.dtype == np.uint8 and img.shape == (3, 4, 3)
    np.testing.assert_array_equal(img[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(img[..., 0], img[..., 2])


def test_32_bit_and_float_images_are_stretched(tmp_path):
    Image.fromarray(np.array([[-1000, 0, 1000]] * 2, np.int32)).save(tmp_path / "i.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif")[0, :, 1], [0, 128, 255])
    Image.fromarray(np.array([[0.0, 0.25, 1.0]] * 2, np.float32)).save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif")[0, :, 0], [0, 64, 255])


def test_bomb_message_names_the_size_and_the_limit_that_applies(tmp_path):
    from conftest import huge_png_header

    (tmp_path / "huge.png").write_bytes(huge_png_header(15000, 15000))
    with pytest.raises(TooLargeError, match="is 225000000 pixels, more than the limit of 1000000; resize it or raise"):
        read_image(tmp_path / "huge.png", max_pixels=10**6)
    # above Pillow's own limit, raising --max-pixels cannot help: the message must not say it does
    with pytest.raises(TooLargeError, match="more than Pillow's limit of .* which --max-pixels cannot raise"):
        read_image(tmp_path / "huge.png", max_pixels=10**9)


# ----------------------------------------------------------------------------- label encodings

ANDRADE_PALETTE = [0, 0, 0, 255, 255, 207, 219, 0, 0, 0, 0, 219]


def _andrade(path, values):
    img = Image.fromarray(values.astype(np.uint8), mode="P")
    img.putpalette(ANDRADE_PALETTE + [0] * (768 - len(ANDRADE_PALETTE)))
    img.save(path)


def _zero_unlabelled():
    values = np.zeros((20, 30), np.uint8)  # 0 = unlabelled, as napari and ilastik write it
    values[2:5, 3:8] = 1
    values[10:14, 20:25] = 2
    return values


def test_grabcut_scribbles_are_recognised_by_their_palette(tmp_path):
    values = _zero_unlabelled()
    _andrade(tmp_path / "a.png", values)
    lf = load_label_file(tmp_path / "a.png")
    assert lf.format.name == "grabcut" and lf.class_names == ("background", "foreground") and lf.warning is None
    expected = np.select([values == 1, values == 2], [1, 0], IGNORE)
    np.testing.assert_array_equal(lf.labels, expected)
    # forced VOC reading: 0 is then background everywhere, which the warning catches
    with pytest.warns(LabelWarning, match="pass --unlabelled 0"):
        labels = read_labels(tmp_path / "a.png", label_format="voc")
    assert (labels == 0).mean() > 0.9


def test_grabcut_format_refuses_values_it_does_not_define(tmp_path):
    values = _zero_unlabelled()
    values[0, 0] = 7
    _andrade(tmp_path / "a.png", values)
    with pytest.raises(InputError, match="value 7 at row 0, column 0 is not one of the grabcut format's values"):
        read_labels(tmp_path / "a.png")


def test_zero_unlabelled_index_file_warns_then_reads_with_unlabelled_0(tmp_path):
    Image.fromarray(_zero_unlabelled(), mode="L").save(tmp_path / "z.png")
    with pytest.warns(LabelWarning, match=r"100% of the pixels are labelled, 94% with the value 0.*pass --unlabelled 0"):
        read_labels(tmp_path / "z.png")
    labels = read_labels(tmp_path / "z.png", unlabelled=0)
    assert set(np.unique(labels)) == {IGNORE, 1, 2} and (labels != IGNORE).sum() == 15 + 20


def test_sparse_file_gives_no_warning(tmp_path):
    write_labels(tmp_path / "l.png", _labels())
    lf = load_label_file(tmp_path / "l.png")
    assert lf.warning is None and lf.class_names[15] == "person"  # a VOC palette PNG


def test_16_bit_label_file(tmp_path):
    values = np.zeros((6, 7), np.uint16)
    values[1, 1], values[4, 5] = 3, 300
    Image.fromarray(values).save(tmp_path / "l16.png")
    labels = read_labels(tmp_path / "l16.png", unlabelled=0, num_classes=301)
    assert labels[1, 1] == 3 and labels[4, 5] == 300 and (labels == IGNORE).sum() == 40
    with pytest.raises(InputError, match=r"label value 300 is not a class .* 0 marks unlabelled pixels in this file"):
        read_labels(tmp_path / "l16.png", unlabelled=0)


def test_colour_scribbles_on_black_with_an_unlabelled_colour(tmp_path):
    lab = _labels()
    rgb = colourize(np.where(lab == 0, 8, lab))  # class 0 is black itself: draw it as class 8 here
    rgb[lab < 0] = 0
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.warns(LabelWarning, match="pass --unlabelled 0,0,0"):
        read_labels(tmp_path / "c.png")
    labels = read_labels(tmp_path / "c.png", unlabelled=(0, 0, 0))
    np.testing.assert_array_equal(labels, np.where(lab == 0, 8, lab))


def test_unlabelled_of_the_wrong_kind_is_explained(tmp_path):
    write_labels(tmp_path / "l.png", _labels())
    with pytest.raises(InputError, match="index image .* give --unlabelled VALUE"):
        read_labels(tmp_path / "l.png", unlabelled=(0, 0, 0))
    Image.fromarray(colourize(_labels())).save(tmp_path / "c.png")
    with pytest.raises(InputError, match="colour image .* give --unlabelled R,G,B"):
        read_labels(tmp_path / "c.png", unlabelled=0)
    with pytest.raises(ValueError, match="unknown label format 'napari'"):
        read_labels(tmp_path / "l.png", label_format="napari")
    with pytest.raises(ValueError, match="fixes its unlabelled value"):
        read_labels(tmp_path / "l.png", label_format="grabcut", unlabelled=0)


def test_colour_error_says_how_to_mark_unlabelled_and_blames_jpeg_and_soft_brushes(tmp_path):
    rgb = colourize(_labels())
    rgb[5, 5] = (127, 1, 0)  # anti-aliased edge of a class-1 stroke
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(InputError) as info:
        read_labels(tmp_path / "c.png")
    msg = str(info.value)
    assert "(127, 1, 0) at row 5, column 5" in msg and "1 pixels in 1 such colours" in msg
    assert "transparent (alpha < 128) or the void colour (224, 224, 192)" in msg
    assert "JPEG" in msg and "soft" in msg and "\n" not in msg


def test_read_ground_truth_binary_masks_and_voc(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    mask[1, 1:7] = 128
    Image.fromarray(mask, mode="L").save(tmp_path / "m.bmp")
    gt = read_ground_truth(tmp_path / "m.bmp")
    assert gt.void == 255 and "binary mask" in gt.note
    np.testing.assert_array_equal(gt.values, np.select([mask == 255, mask == 0], [1, 0], 255))
    explicit = read_ground_truth(tmp_path / "m.bmp", void=255)
    assert explicit.note is None and set(np.unique(explicit.values)) == {0, 128, 255}
    write_labels(tmp_path / "voc.png", np.array([[0, 15], [IGNORE, 15]]))  # a palette PNG: the VOC way
    voc = read_ground_truth(tmp_path / "voc.png")
    assert voc.note is None and voc.values.tolist() == [[0, 15], [255, 15]]


def test_write_labels_refuses_a_class_it_would_write_as_unlabelled(tmp_path):
    with pytest.raises(ValueError, match="255 marks unlabelled pixels"):
        write_labels(tmp_path / "x.png", np.array([[0, 255]]))
