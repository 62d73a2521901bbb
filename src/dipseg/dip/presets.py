"""Named DIPSEG presets: a network and a fit configuration, defined once, in one registry.

``PRESETS[name]`` is what ``--preset name`` selects on the command line and what
``dipseg.segment(..., preset=name)`` uses. ``DEFAULT_PRESET`` is chosen by the
measurements in ``docs/performance.md``; ``paper`` reproduces the poster's method.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .config import FitConfig, NetworkConfig, given


@dataclass(frozen=True)
class Preset:
    """A named pair of :class:`NetworkConfig` and :class:`FitConfig`."""

    name: str
    network: NetworkConfig
    fit: FitConfig
    description: str

    def with_fit(self, **overrides) -> "Preset":
        """A copy with some :class:`FitConfig` fields replaced (``None`` values are ignored)."""
        overrides = given(overrides)
        return replace(self, fit=replace(self.fit, **overrides)) if overrides else self

    def with_network(self, **overrides) -> "Preset":
        """A copy with some :class:`NetworkConfig` fields replaced (``None`` values are ignored).

        Sequences (e.g. from a TOML or JSON sweep file) become tuples, as the config holds them.
        """
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in given(overrides).items()}
        return replace(self, network=replace(self.network, **overrides)) if overrides else self


SLIM = NetworkConfig(
    channels_down=(16, 32, 64, 128, 128),
    channels_up=(16, 32, 64, 128, 128),
    channels_skip=(4, 4, 4, 4, 4),
    upsample="bilinear",
)

# Four scales are enough at 64 px (the fifth would work on 4x3 pixels); docs/study.md.
FAST = NetworkConfig(
    channels_down=(16, 32, 64, 128),
    channels_up=(16, 32, 64, 128),
    channels_skip=(4, 4, 4, 4),
    upsample="bilinear",
)

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper",
        # DIP denoising widths: 128 channels at 5 scales, 4 skip channels, bilinear.
        NetworkConfig(),
        FitConfig(iterations=200, working_size=None, input="noise", rgb_weight=1.0, class_balanced=False),
        "The poster's method: noise input, official DIP widths (128x5), MSE + CE at full "
        "resolution, 200 steps (the poster's last figure epoch). Minutes per image on a CPU.",
    ),
    "slim": Preset(
        "slim",
        SLIM,
        FitConfig(iterations=300, working_size=160, input="noise"),
        "The paper's method made affordable: noise input, slim widths, 160 px working size, "
        "300 steps, bilinear upsampling. The baseline the fast preset improves on.",
    ),
    "fast": Preset(
        "fast",
        FAST,
        FitConfig(
            iterations=30,
            working_size=64,
            input="noise+image+xy",
            pairwise_weight=1.0,
            box_prior=6.0,
            box_spot_min=3,
            box_point_gap=1.0,
            box_spot_span=0.1,
            spot_rules_min_points=5,
            point_border=3.0,
            colour_weight=6.0,
            colour_spot_scale=0.5,
            network_coverage=0.3,
            refine="random-walk",
            refine_dense_strength=1e-7,
            refine_dense_connected=True,
            hole_fill=0.1,
        ),
        "Default. Noise plus image and coordinates as input, four scales of slim widths, an "
        "appearance-weighted pairwise loss, 64 px working size, 30 steps; then, at 256 px, a "
        "box prior around each class's labels (tighter for labels that are scattered spots "
        "than for strokes, as wide as their count suggests for a few single points, and for spots "
        "falling off within a tenth of their own box) and per-class colour models added to the network's logits (which "
        "count less when the labels cover little of each class, and half as much when they are scattered "
        "spots rather than strokes; fewer than five single points keep the image-wide falloff and full colour), "
        "and a random walker seeded "
        "by the labels (trusting dense labels more, and keeping each class to the regions that "
        "hold its labels when they are dense), snapped to full resolution; small background "
        "holes that a class encloses go to it.",
    ),
}
PRESETS["lite"] = Preset(
    "lite",
    replace(FAST, channels_down=(8, 16, 32, 64), channels_up=(8, 16, 32, 64)),
    PRESETS["fast"].fit,
    "The default with half its widths: as accurate on VOC train images and about a quarter "
    "faster (docs/study.md, architecture sweep).",
)

PRESETS["clicks"] = Preset(
    "clicks",
    FAST,
    replace(PRESETS["fast"].fit, refine_strength=1e-6, refine_dense_strength=None, box_spot_min=0,
            box_free_background=True, network_coverage=0.0, colour_rounds=1, colour_rounds_min_share=0.03,
            refine_cut=2.0, refine_cut_walk=0.5, refine_connected=True, refine_dense_connected=False,
            point_border=0.0, hole_fill=0.0),
    "The default with its random walk trusting the labels ten times more (refine_strength "
    "1e-6), one box geometry for every class (no tighter box for spot labels, which costs "
    "this preset half a click at 90 %) and the background always free of the box prior "
    "(the first negative click no longer confines it) and the network at full weight "
    "whatever the clicks' coverage (dropping the border frame at the first negative click "
    "no longer mutes it), and one GrabCut-like colour round (the colour models re-fitted to "
    "the answer, unless a class holds under 3 % of the image), and, with two classes, a graph cut that decides "
    "each pixel's class (a random walk lets the border frame outweigh the clicks on objects that touch "
    "the border), keeping only the object's regions that hold a click, and no hole filling (mixed in the "
    "click loop): fewer clicks per object to 90 % IoU "
    "on the GrabCut set than the default and ahead of the random walker with dense labels, "
    "but lower on VOC val with blobs:100 / uniform:10 (docs/study.md, Seed trust; "
    "docs/interactive.md).",
)

DEFAULT_PRESET = "fast"

CLICK_PRESET = "clicks"
"""The preset for labels placed as clicks: the web page's Click tool (with its preset on
"auto"), the click loop of docs/interactive.md."""


def get_preset(name: str) -> Preset:
    """Look up a preset by name.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
