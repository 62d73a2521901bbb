import pytest

from dipseg.dip.config import FitConfig, NetworkConfig, fit_shape, given, input_channels, working_shape


def test_working_shape_scales_the_longest_side_and_never_upscales():
    assert working_shape((375, 500), 160) == (120, 160)
    assert working_shape((30, 40), 160) == (30, 40)
    assert working_shape((375, 500), None) == (375, 500)


@pytest.mark.parametrize("shape, expected", [((375, 500), (72, 96)), ((6, 300), (33, 96)), ((2, 2), (33, 33))])
def test_fit_shape_stretches_thin_images_to_the_network_depth(shape, expected):
    network = NetworkConfig(channels_down=(8,) * 5, channels_up=(8,) * 5, channels_skip=(4,) * 5)
    assert fit_shape(shape, network, FitConfig(working_size=96)) == expected


def test_given_drops_unset_options_only():
    assert given({"iterations": None, "rgb_weight": 0.0, "input": "noise"}) == {"rgb_weight": 0.0, "input": "noise"}
    assert given(None) == {}


@pytest.mark.parametrize("mode, channels", [("noise", 32), ("noise+image", 35), ("noise+image+xy", 37)])
def test_input_channels(mode, channels):
    assert input_channels(FitConfig(input=mode)) == channels


def test_bad_config():
    with pytest.raises(ValueError, match="network_coverage"):
        FitConfig(network_coverage=-0.1)
    with pytest.raises(ValueError, match="box_network_scale must be in \\[0, 1\\], got 1.5"):
        FitConfig(box_network_scale=1.5)
    with pytest.raises(ValueError, match="colour_rounds=-1"):
        FitConfig(colour_rounds=-1)
    with pytest.raises(ValueError, match="colour_rounds_min_share must be in \\[0, 1\\), got 1.0"):
        FitConfig(colour_rounds_min_share=1.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="refine_cut must be a finite number >= 0"):
            FitConfig(refine_cut=bad)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="refine_cut_walk must be in \\[0, 1\\]"):
            FitConfig(refine_cut_walk=bad)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="box_min_extent"):
            FitConfig(box_min_extent=bad)
    for field, bad in (("box_spot_min", -1), ("box_spot_margin", -0.1), ("box_spot_falloff", 0.0)):
        with pytest.raises(ValueError, match="box_spot"):
            FitConfig(**{field: bad})
    with pytest.raises(ValueError, match="box_tightness=-1"):
        FitConfig(box_tightness=-1.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="box_inside must be a finite number"):
            FitConfig(box_inside=bad)
    with pytest.raises(ValueError, match="box_refine_strength must be > 0"):
        FitConfig(box_refine_strength=0.0)
    for field, bad in (("box_sure_at", 0.0), ("box_sure_at", 1.0), ("box_sure_strength", -1e-3),
                       ("box_sure_strength", float("nan"))):
        with pytest.raises(ValueError, match="box_sure_at must be in \\(0, 1\\) and box_sure_strength"):
            FitConfig(**{field: bad})
    for field, bad in (("box_fill_least", -0.1), ("box_fill_least", 1.0), ("box_fill_strength", -1e-2),
                       ("box_fill_strength", float("inf"))):
        with pytest.raises(ValueError, match="box_fill_least must be in \\[0, 1\\) and box_fill_strength"):
            FitConfig(**{field: bad})
    for field, bad in (("box_cover_least", -0.1), ("box_cover_least", 1.5), ("box_cover_below", 2.0),
                       ("box_cover_strength", -1e-3), ("box_cover_strength", float("nan"))):
        with pytest.raises(ValueError, match="box_cover_least and box_cover_below must be in \\[0, 1\\]"):
            FitConfig(**{field: bad})
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="box_spot_span must be a finite number >= 0"):
            FitConfig(box_spot_span=bad)
    with pytest.raises(ValueError, match="spot_rules_min_points must be >= 0"):
        FitConfig(spot_rules_min_points=-1)
    with pytest.raises(ValueError, match="input must be one of"):
        FitConfig(input="rgb")
    with pytest.raises(ValueError, match="refine must be one of"):
        FitConfig(refine="crf")
    with pytest.raises(ValueError, match="same, non-zero length"):
        NetworkConfig(channels_down=(8, 8), channels_up=(8,), channels_skip=(4, 4))
