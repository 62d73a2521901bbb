"""The configuration of a DIPSEG fit: the network's shape and how one image is fitted.

Both are small frozen dataclasses; named combinations live in :mod:`dipseg.dip.presets`.
This module imports no torch, so presets and configs can be listed and validated
without loading it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

INPUT_MODES = ("noise", "noise+image", "noise+image+xy", "noise+xy")
"""What the network sees: noise alone (the paper), or noise with the image and/or pixel coordinates."""

REFINERS = ("none", "guided", "random-walk")
"""Full-resolution refinements of the class probabilities."""

WARM_FRACTION = 0.5
"""Fraction of a preset's steps that a warm-started refit runs (the web page after more
painting, the interactive protocol after each click): it starts from a fitted network."""


@dataclass(frozen=True)
class NetworkConfig:
    """Widths and options of the skip network.

    Attributes
    ----------
    channels_down, channels_up, channels_skip : tuple of int
        Channels per scale, from the finest to the coarsest; all three the same length
        (the depth). ``channels_skip[i] = 0`` drops the skip branch at scale ``i``.
    upsample : {"bilinear", "nearest"}
    filter_size : int
        Kernel size of the down and up 3x3 convolutions.
    need_1x1_up : bool
        Extra 1x1 conv after each up convolution (official default True).
    decoder : {"skip", "deep-decoder"}
        ``skip``: DIP's encoder-decoder. ``deep-decoder``: a decoder only (Heckel & Hand,
        ICLR 2019): the input average-pooled to the coarsest scale, then per scale a 1x1
        convolution, x2 upsampling, LeakyReLU and BatchNorm, with ``channels_up`` widths
        (``channels_down``, ``channels_skip``, ``filter_size`` and ``need_1x1_up`` unused).
    """

    channels_down: tuple[int, ...] = (128, 128, 128, 128, 128)
    channels_up: tuple[int, ...] = (128, 128, 128, 128, 128)
    channels_skip: tuple[int, ...] = (4, 4, 4, 4, 4)
    upsample: str = "bilinear"
    filter_size: int = 3
    need_1x1_up: bool = True
    decoder: str = "skip"

    def __post_init__(self) -> None:
        depth = len(self.channels_down)
        if depth < 1 or len(self.channels_up) != depth or len(self.channels_skip) != depth:
            raise ValueError(
                "channels_down, channels_up and channels_skip must have the same, non-zero length; got "
                f"{len(self.channels_down)}, {len(self.channels_up)}, {len(self.channels_skip)}"
            )
        if self.decoder not in ("skip", "deep-decoder"):
            raise ValueError(f"decoder must be 'skip' or 'deep-decoder', got {self.decoder!r}")
        if self.upsample not in ("bilinear", "nearest"):
            raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {self.upsample!r}")
        if any(c < 1 for c in self.channels_down + self.channels_up) or any(c < 0 for c in self.channels_skip):
            raise ValueError("channel counts must be positive (skip channels may be 0)")

    @property
    def depth(self) -> int:
        return len(self.channels_down)


@dataclass(frozen=True)
class FitConfig:
    """How one image is fitted.

    Attributes
    ----------
    iterations : int
        Adam steps (upper bound when ``early_stop`` is set).
    lr : float
        Adam learning rate (0.01 in the official DIP code).
    rgb_weight : float
        Weight of the RGB reconstruction MSE; 0 is the poster's "wo/RGB" ablation.
    input_channels : int
        Channels of the fixed uniform noise input (32 officially).
    input_scale : float
        Noise amplitude: uniform in ``[0, input_scale)`` (0.1 officially).
    reg_noise_std : float
        Std of the Gaussian jitter added to the input at every step (DIP's ``reg_noise_std``).
    input : {"noise", "noise+image", "noise+image+xy"}
        What the network sees: noise only (the paper), or noise with the image (and pixel
        coordinates) concatenated.
    working_size : int or None
        Longest side of the working resolution; None fits at full resolution.
    pairwise_weight : float
        Weight of an appearance-weighted Potts term on the predicted probabilities
        (a local version of Tang et al. 2018's CRF loss); 0 disables it.
    pairwise_sigma : float
        Colour bandwidth (0..1 RGB scale) of the pairwise weights.
    class_balanced : bool
        Average the CE per class first, so a class with many labelled pixels does not
        drown one with few.
    box_prior : float
        Strength of the spatial prior that a class stays near the bounding box of its
        labels (see :func:`dipseg.dip.priors.box_prior`), added to the logits; 0 disables it.
    box_margin : float
        Enlargement of each class's label box, as a fraction of its size per side.
    box_falloff : float
        Distance outside the box, as a fraction of the image's longest side, over which
        the prior's penalty grows by ``box_prior`` nats.
    box_min_extent : float
        A class whose labels span less than this fraction of the image's longest side (a
        single click or pixel) gets no box prior: such a "box" says where the class is, not
        how far it reaches. 0 applies the prior to every class. 0.01 (5 px of a VOC image)
        drops it for single labelled pixels only (``uniform:1``: +8.7 mIoU on 30 train
        images, docs/study.md); 0.05 also drops it for compact blobs, which costs 1.4 there.
    box_spot_min : int
        A class whose labels are at least this many separate spots (points, clicks, small
        blobs; :func:`dipseg.dip.priors.spot_classes`) gets the box geometry
        ``box_spot_margin`` / ``box_spot_falloff`` instead of ``box_margin`` /
        ``box_falloff``: scattered spots reach towards the object's extremes, strokes do
        not. 0 treats every class alike.
    box_spot_margin, box_spot_falloff : float
        The box margin and falloff for spot-labelled classes.
    box_point_gap : float
        A spot class labelled by ``n`` single points (sampled pixels, not blobs or clicks)
        gets the margin ``max(box_spot_margin, box_point_gap / (n - 1))`` of its labels'
        span per side: ``n`` random points inside an object leave ``1/(n + 1)`` of its
        extent uncovered per side on average (:func:`dipseg.dip.priors.box_prior`). 0 keeps
        ``box_spot_margin`` for them.
    box_spot_span : float
        A spot class's falloff is at most this fraction of its (enlarged) label box's
        longer side, so the prior confines a small object as steeply, relative to its size,
        as a large one (``box_spot_falloff`` is a fraction of the image). 0 keeps
        ``box_spot_falloff`` for every size.
    spot_rules_min_points : int
        A spot class labelled by fewer single points than this (2 to ``n - 1`` sampled
        pixels; :func:`dipseg.dip.priors.few_points`) is exempt from ``box_spot_span`` and
        ``colour_spot_scale``: a few random points seldom span their object, and with so
        few seeds the walk needs the colour models. 0 exempts none.
    refine : {"none", "guided", "random-walk"}
        Full-resolution edge-aware refinement of the upsampled probabilities: a guided
        filter, or a random walker that uses them as a prior.
    refine_radius : int
        Guided-filter radius in full-resolution pixels.
    refine_eps : float
        Guided-filter regulariser (on a 0..1 intensity scale).
    refine_strength : float
        Random-walk refinement: trust in the network's probabilities against the edges
        (seeds spread about ``1/sqrt(strength)`` pixels before the prior takes over).
        1e-6 (preset ``clicks``) trusts the labels more: better with many labels and in the
        click loop, but lower on VOC val with ``blobs:100`` / ``uniform:10`` (docs/study.md,
        "Seed trust"), so the default stays 1e-5.
    refine_dense_strength : float or None
        The random walk's strength for dense labels: as the labels' coverage ``c``
        (:func:`dipseg.dip.colour.coverage_weight`) grows from ``refine_dense_from`` to
        ``refine_dense_to``, the strength moves from ``refine_strength`` to this value
        (linearly in its logarithm). None keeps ``refine_strength`` for any labels.
    refine_dense_from, refine_dense_to : float
        The coverage range of that change, ``0 <= from < to <= 1``.
    refine_cut : float
        Two classes with the random-walk refinement: the class map is the minimum graph cut
        (:func:`dipseg.graphcut.binary_graph_cut`) of ``-log p`` unaries, ``p`` being what the
        walk refines (the network's probabilities plus the priors, after the colour rounds),
        and this weight on the walk's edge weights, the labels fixed; the probabilities are
        the mean of the walk's and the cut's (one-hot) answers, so the class is the cut's and
        pixels where the two disagree read as uncertain. A random walk lets a long seed line
        (the click loop's border frame) outweigh a few clicks in a region of even colour; a
        cut does not. 0 (the default) keeps the walk's answer; with more than two classes
        the walk's answer always stands.
    refine_cut_walk : float in [0, 1]
        The walk's share in the cut's unaries: ``p = p_prior^(1 - a) * p_walk^a``. 0 trusts
        the network and priors alone (a negative click then holds only its own disk); the
        walk brings the clicks' reach along the edges back in.
    refine_connected : bool
        Two classes (object and ``background``) with the random-walk refinement, no boxes:
        the object keeps only its regions that hold one of its labels (at the walk's size);
        islands elsewhere go to the background. One object per image, as in the click loop;
        off by default, since several instances of a class need not all be labelled.
    refine_dense_connected : bool
        With the random-walk refinement, no boxes, and labels whose coverage
        (:func:`dipseg.dip.colour.coverage_weight`) reaches ``refine_dense_from`` (the
        dense labels the walk trusts further): every class keeps only its regions that hold
        one of its labels (at the walk's size); elsewhere the next most likely class takes
        over. Labels that dense (30 points per class, scribbles) reach every part of every
        object, so a region without one is a leak. On in the preset ``fast``
        (2026-12-07, seventh session): first 150 VOC train images ``uniform:30`` /
        ``uniform:100`` 83.54 / 90.25 mIoU against 83.45 / 90.19; train images 151-330
        82.65 / 90.83 against 82.16 / 90.42, ``blobs:1000`` 62.78 against 62.61; VOC val
        250 83.33 / 90.12 against 83.38 / 90.08, ``blobs:1000`` 62.25 against 62.24; the
        GrabCut set's scribble sets 1 / 2 88.85 / 95.14 against 88.74 / 94.43. From
        coverage 0.2 (reaching ``uniform:10``) it lifts ``uniform:10`` on the train images
        (74.92 against 74.61) but loses on the unseen ones (74.45 against 75.00)
        (docs/study.md).
    refine_beta : float
        Random-walk refinement: edge sensitivity (see :func:`dipseg.features.edge_weights`).
    refine_size : int or None
        Random-walk refinement runs at this longest side (None: full resolution), then is
        upsampled and snapped to the image's edges with the guided filter.
    colour_weight : float
        Weight of a per-class colour model (a Gaussian mixture over CIELAB fitted to each
        class's labelled pixels, see :func:`dipseg.dip.colour.colour_logits`) added to the
        logits before the refinement; 0 disables it. It carries appearance to parts of an
        object far from its labels, as GrabCut's colour models do.
    colour_coverage : bool
        Scale ``colour_weight`` by :func:`dipseg.dip.colour.coverage_weight`: trust the colour
        models less when each class's labels sit in a few compact spots.
    colour_spot_scale : float
        Factor on ``colour_weight`` for images whose labelled classes are all scattered spots
        (:func:`dipseg.dip.priors.spot_classes` with ``box_spot_min``; with some spot classes,
        the factor moves towards 1 with their share; boxes and ``box_spot_min`` 0 leave the
        weight as it is). Spots sampled over an object reach its extent, so the random walk
        needs the colour models less there, and their confusions (a dark cloud beside a dark
        bird) cost more; strokes stay inside their objects and colour carries them to the far
        ends (docs/study.md, "Colour for spots and for strokes").
    colour_floor : float or None
        Log-density floor (nats) of every class's model, so colours that no class's labels
        show do not favour any class; None for none.
    colour_clip : float
        Bound (nats) on each class's centred colour log-likelihood.
    colour_components : int
        Mixture components per class.
    quick_preview : bool
        With a callback, first send (as iteration 0) a preview that needs no network: the
        labels diffused along image edges under the box prior, in milliseconds.
    early_stop : bool
        Stop once every labelled pixel is predicted right and the working-resolution
        prediction changed on fewer than ``early_stop_tol`` of pixels over the last check.
    early_stop_tol : float
        Fraction of pixels.
    check_every : int
        Iterations between early-stop checks (and the default preview interval).
    views : int
        Views of the image per step (:mod:`dipseg.dip.augment`): the image itself plus
        ``views - 1`` random flips / crops / colour changes, applied consistently to the
        input and every target, in one batch.
    view_flip : bool
        Augmented views are mirrored at random.
    view_scale : float in (0, 1]
        Smallest crop (fraction of the side) of an augmented view, rescaled to the working size.
    view_colour : float
        Brightness and contrast change of an augmented view, up to this fraction.
    tta_flip : bool
        The final prediction averages the image and its mirror image.
    use_network : bool
        False skips the network altogether: the class probabilities are the priors,
        colour models and refinement alone (the "no network" ablation).
    network_coverage : float
        Trust the network's class logits by how well the labels cover the classes: they are
        multiplied by ``min(1, c / network_coverage) ** network_coverage_power``, with ``c``
        the labels' :func:`dipseg.dip.colour.coverage_weight`, before the priors are added.
        A net fitted to a few compact blobs is confidently wrong far from them, and the
        box and colour priors and the random walk then do better alone; with labels spread
        over each class the network keeps its full weight. 0 disables the scaling.
    network_coverage_power : float
        Exponent of that weight (>= 0).
    box_tightness : float
        With boxes (``segment(..., boxes=...)``): weight of the tightness loss, every row
        and column of a box holds its object (:class:`dipseg.dip.boxterm.BoxTightness`);
        0 disables it. Unused without boxes. 4 (was 1 until 2026-12-03), with
        ``box_outside`` 10: first 100 VOC train / val images 74.75 / 71.76 mIoU against
        73.08 / 70.15, the 50 GrabCut-set boxes 78.08 against 77.82 (docs/boxes.md).
    box_slack : float
        With boxes: fraction of a box's height / width along each edge exempt from the
        tightness loss (drawn boxes are a little loose).
    box_outside : float
        With boxes: nats subtracted from a box class's logits outside its own boxes
        (10, was 6 until 2026-12-03, chosen with ``box_tightness``).
    box_points : int
        With boxes: background pixels outside every box that the cross-entropy sees
        (a seeded subset; all of them seed the refinement and the final map).
    box_colour : bool
        With boxes: fit each box class's colour model to its boxes' pixels (GrabCut's
        rectangle initialisation) rather than to labelled pixels only.
    box_refine_strength : float
        With boxes: ``refine_strength`` of the random-walk refinement. The background
        outside the boxes seeds the walk and a box may hold no seed of its object, so the
        network's probabilities must be trusted more than with seeds of every class
        (spread about ``1/sqrt(strength)`` pixels). 1e-4 (was 1e-3 until 2026-12-02): on
        the 50 GrabCut-set boxes 77.82 mIoU against 76.00, on 30 VOC val images 71.12
        against 71.42; lower values gain more on the GrabCut set (1e-5: 80.46) and lose
        as much on VOC (66.94) (docs/boxes.md).
    box_colour_rounds : int
        With boxes: times the colour models are re-fitted to the current answer and the
        refinement solved again (GrabCut's iterations; :class:`dipseg.dip.refine.BoxRounds`).
    colour_rounds : int
        Without boxes: times the colour models are re-fitted to the current answer and the
        refinement solved again, as ``box_colour_rounds`` does with boxes; the re-fitted
        models come from every pixel of the answer, so they get the full ``colour_weight``.
        0 disables them.
    colour_rounds_min_share : float in [0, 1)
        The colour rounds (with boxes or without) stop before a round in which a class
        holds less than this share of the image in the current answer: a small object's
        mixture, fitted to its few (mostly boundary) pixels, leads the rounds astray.
    box_fit_colour : float
        With boxes: weight of the colour models (at working resolution) added to the
        logits during the fit too, not only at the full-resolution stage; 0 disables it.
    box_free_background : bool
        The label-box prior (``box_prior``) leaves the background class (the fit's
        ``background``, 0) free everywhere and confines the other classes near their
        labels, even where an object's labels span more than the background's (after the
        click loop's first negative click). False (the default): the class of largest
        label box is the free one. On in the preset ``clicks`` (GrabCut set NoC@85 / 90
        4.78 / 6.80 against 5.10 / 6.98); in ``fast`` it cost VOC val ``uniform:3`` 0.7
        mIoU (docs/interactive.md).
    box_network_scale : float in [0, 1]
        With boxes: the factor on the network's logits (``network_coverage``'s rule counts a
        box class as unlabelled), in the first solve and in every colour round. 0.6
        (2026-12-03): GrabCut set boxes / box+clicks:5 78.99 / 79.08 mIoU, COCO MVal 50
        85.19, first 100 VOC val 71.98; 1 is better on VOC (train 74.73 against 74.07) and
        COCO (85.85), worse on the GrabCut set (76.66) (docs/boxes.md).
    box_inside : float
        With tight boxes only (``segment(..., tight_boxes=True)``: boxes from detection
        data, which touch their object on all four sides): nats added to a box class's
        log-prior inside its boxes at the full-resolution stage (not in the network's fit),
        so that parts of the object coloured like the background are not cut out of it.
        A drawn box is looser and its margin is background, so without ``tight_boxes`` it
        is unused. 4 (2026-12-07): first 150 VOC train images 77.11 mIoU against 74.19
        without it (2: 75.73, 8: 76.57; in the fit as well: 76.75); the 50 GrabCut-set
        objects in boxes 10 % larger fall from 78.99 to 68.73 with it (docs/boxes.md).
    point_border : float
        Nats subtracted from a class known by a single point (its labels span less than
        ``box_min_extent`` of the image, so the box prior cannot place it) inside a band
        along the image's border, when the background is labelled: an object clicked once
        seldom fills the image's edges, which are mostly background. 0 disables it; the
        preset ``fast`` sets 3 (2026-12-07: first 150 VOC train images, ``uniform:1``, 37.12
        mIoU against 29.38; 1 nat 36.81, 6 nats 36.97; docs/study.md).
    point_border_band : float in (0, 0.5)
        Width of that band as a fraction of the image's height (top and bottom rows) and
        width (left and right columns). 0.1 (0.05: 36.97, 0.2: 31.95). Both act through the
        label-box prior, so only where ``box_prior`` > 0.
    box_sure_at : float in (0, 1)
        With tight boxes: the probability of a box's class in the walk's prior (network,
        colour models and box priors, after the colour rounds) from which a pixel is "sure"
        object.
    box_sure_strength : float
        With tight boxes: the walk's trust in its prior at those sure pixels (elsewhere
        ``box_refine_strength``); 0 turns the rule off. The background's seeds outside a
        tight box otherwise flood parts of the object coloured like them (a dark shirt
        before a dark room), although the prior is sure of them. 1e-3 at 0.99 (2026-12-07):
        first 150 VOC train images 78.48 mIoU against 78.17 with the walk at 3e-4
        everywhere, as tight boxes had it until then (5e-4 / 2e-3: 78.41 / 78.37; at 0.98 /
        0.995: 78.46 / 78.50; sure background pixels too, at 0.99 / 0.95: 77.67 / 77.54);
        and 79.31 with ``box_refine_strength`` 1e-4 elsewhere (2e-4: 78.88, 5e-5: 78.14),
        which took the 3e-4 of tight boxes' own field ``box_tight_refine_strength`` out:
        VOC val 250 76.50 against 75.12 before both, train 151-330 78.35 against 77.45.
        On drawn boxes (the GrabCut set) it costs 1.2 (77.78 against 78.99), so it is for
        tight boxes only (docs/boxes.md).
    box_fill_least : float in [0, 1)
        With tight boxes: the least share of its box a box's class should win after a walk
        solve; where it wins less, that solve is repeated with ``box_fill_strength`` inside
        the box (:class:`dipseg.dip.refine.FillRule`). A tight box's object touches all four
        of its sides: under 1 % of VOC's train boxes are less than 12 % object. 0 turns the
        rule off.
    box_fill_strength : float
        The walk's trust in its prior inside such a box. 0.1 and 1e-2 (2026-12-07, third session): first
        150 VOC train images 79.49 mIoU against 79.31 without the rule (0.05 / 0.15 / 0.2:
        79.49 / 79.39 / 79.43; strength 1e-3 / 1e-1: 79.48 / 79.40), VOC val 250 76.60
        against 76.50 (docs/boxes.md).
    box_cover_least : float in [0, 1]
        With tight boxes: the least share of a box's rows, and of its columns, that should
        hold a pixel of its class after a walk solve (a tight box's object reaches every row
        and column of it: one connected piece spans them all). Where fewer do and the class
        also wins less than ``box_cover_below`` of the box, the walk has cut off part of the
        object, and the solve is repeated with ``box_cover_strength`` inside that box
        (:class:`dipseg.dip.refine.FillRule`). 0 turns the rule off.
    box_cover_below : float in [0, 1]
        Only boxes whose class wins less than this share are checked: a box the answer
        already fills half of is more often a thin object (an aeroplane's wings) whose
        missing rows the prior would fill with the sky around them.
    box_cover_strength : float
        The walk's trust in its prior inside such a box. 0.95 below 0.4 at 1e-3
        (2026-12-07, seventh session): first 150 VOC train images 79.69 mIoU against 79.49
        without the rule (0.9 / strength 3e-3 / below 0.3 / 0.5: 79.57 / 79.56 / 79.57 /
        79.56; 0.95 at 1e-2 without the share test: 79.33); VOC val 250 over four seeds
        76.83 against 76.53, train images 151-330 over two 77.98 against 77.68 (docs/boxes.md).
    box_hole_fill : float in [0, 1]
        With tight boxes: background enclaves of the final answer that a box's class
        encloses inside that box, each up to this share of the box's area, go to the box's
        class (:func:`dipseg.dip.holes.fill_box_holes`); one object fills its tight box
        without small holes, and the walk leaves some (specks of the background's colours).
        Enclaves of another class (an object in front) and enclaves holding a label of the
        user's stay. 0 turns the rule off. 0.01 (2026-12-08): first 150 VOC train images
        80.04 mIoU against 79.69 without it (0.005 / 0.02 / 0.03: 79.92 / 79.97 / 80.00);
        on drawn boxes (the GrabCut set) it changes nothing measurable, and it is for tight
        boxes only (docs/boxes.md).
    hole_fill : float in [0, 1]
        Without boxes: background enclaves of the final answer that another class encloses,
        each up to this share of that class's area and holding no label of the user's, go
        to that class (:func:`dipseg.dip.holes.fill_class_holes`). 0 (off) here; the preset
        ``fast`` takes 0.1 (2026-12-08): on the first 150 VOC train images it gains 0.2-0.7
        mIoU with blobs and with one or three points per class (``blobs:30`` 63.01 to
        63.75, ``uniform:3`` 50.88 to 51.46) and nothing with 10-100 points (1 % / 5 % /
        20 % / any size within 0.1 of it on most budgets); the
        GrabCut set's scribbles and click loop are level or better. The preset ``clicks``
        leaves it off (click loop 3.46 / 4.92 against 3.54 / 4.88; docs/study.md).
    """

    iterations: int = 300
    lr: float = 0.01
    rgb_weight: float = 1.0
    input_channels: int = 32
    input_scale: float = 0.1
    reg_noise_std: float = 1.0 / 30.0
    input: str = "noise"
    working_size: int | None = 160
    pairwise_weight: float = 0.0
    pairwise_sigma: float = 0.1
    class_balanced: bool = True
    box_prior: float = 0.0
    box_margin: float = 0.15
    box_falloff: float = 0.1
    box_min_extent: float = 0.01
    box_spot_min: int = 0
    box_spot_margin: float = 0.05
    box_spot_falloff: float = 0.05
    box_point_gap: float = 0.0
    box_spot_span: float = 0.0
    spot_rules_min_points: int = 0
    refine: str = "none"
    refine_radius: int = 4
    refine_eps: float = 1e-3
    refine_strength: float = 1e-5
    refine_dense_strength: float | None = None
    refine_dense_from: float = 0.35
    refine_dense_to: float = 0.75
    refine_cut: float = 0.0
    refine_cut_walk: float = 0.0
    refine_connected: bool = False
    refine_dense_connected: bool = False
    refine_beta: float = 25_000.0
    refine_size: int | None = 256
    colour_weight: float = 0.0
    colour_coverage: bool = True
    colour_spot_scale: float = 1.0
    colour_floor: float | None = -4.0
    colour_clip: float = 10.0
    colour_components: int = 5
    quick_preview: bool = True
    early_stop: bool = False
    early_stop_tol: float = 0.005
    check_every: int = 25
    views: int = 1
    view_flip: bool = True
    view_scale: float = 0.8
    view_colour: float = 0.1
    tta_flip: bool = False
    use_network: bool = True
    network_coverage: float = 0.0
    network_coverage_power: float = 2.0
    box_tightness: float = 4.0
    box_slack: float = 0.1
    box_outside: float = 10.0
    box_points: int = 4000
    box_colour: bool = True
    box_refine_strength: float = 1e-4
    box_colour_rounds: int = 2
    box_fit_colour: float = 0.0
    box_free_background: bool = False
    box_network_scale: float = 0.6
    box_inside: float = 4.0
    point_border: float = 0.0
    point_border_band: float = 0.1
    box_sure_at: float = 0.99
    box_sure_strength: float = 1e-3
    box_fill_least: float = 0.1
    box_fill_strength: float = 1e-2
    box_cover_least: float = 0.95
    box_cover_below: float = 0.4
    box_cover_strength: float = 1e-3
    box_hole_fill: float = 0.01
    hole_fill: float = 0.0
    colour_rounds: int = 0
    colour_rounds_min_share: float = 0.0

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.rgb_weight < 0:
            raise ValueError(f"rgb_weight must be >= 0, got {self.rgb_weight}")
        if self.input not in INPUT_MODES:
            raise ValueError(f"input must be one of {INPUT_MODES}, got {self.input!r}")
        if self.working_size is not None and self.working_size < 16:
            raise ValueError(f"working_size must be >= 16 or None, got {self.working_size}")
        if self.refine not in REFINERS:
            raise ValueError(f"refine must be one of {REFINERS}, got {self.refine!r}")
        if not 0 <= self.colour_spot_scale <= 1:
            raise ValueError(f"colour_spot_scale must be in [0, 1], got {self.colour_spot_scale}")
        if self.colour_weight < 0 or self.colour_clip <= 0 or self.colour_components < 1:
            raise ValueError(
                "colour_weight must be >= 0, colour_clip > 0 and colour_components >= 1, got "
                f"{self.colour_weight}, {self.colour_clip}, {self.colour_components}"
            )
        if self.check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {self.check_every}")
        if self.network_coverage < 0 or self.network_coverage_power < 0:
            raise ValueError(f"network_coverage and network_coverage_power must be >= 0, got "
                             f"{self.network_coverage}, {self.network_coverage_power}")
        if not 0 <= self.box_min_extent < 1:
            raise ValueError(f"box_min_extent must be in [0, 1), got {self.box_min_extent}")
        if self.refine_dense_strength is not None and not self.refine_dense_strength > 0:
            raise ValueError(f"refine_dense_strength must be > 0 or None, got {self.refine_dense_strength}")
        if not 0 <= self.refine_dense_from < self.refine_dense_to <= 1:
            raise ValueError(f"refine_dense_from and refine_dense_to must satisfy 0 <= from < to <= 1, got "
                             f"{self.refine_dense_from}, {self.refine_dense_to}")
        if self.box_spot_min < 0 or self.box_spot_margin < 0 or self.box_spot_falloff <= 0:
            raise ValueError(f"box_spot_min and box_spot_margin must be >= 0 and box_spot_falloff > 0, got "
                             f"{self.box_spot_min}, {self.box_spot_margin}, {self.box_spot_falloff}")
        if not (math.isfinite(self.box_point_gap) and self.box_point_gap >= 0):
            raise ValueError(f"box_point_gap must be a finite number >= 0, got {self.box_point_gap}")
        if self.spot_rules_min_points < 0:
            raise ValueError(f"spot_rules_min_points must be >= 0, got {self.spot_rules_min_points}")
        if not (math.isfinite(self.box_spot_span) and self.box_spot_span >= 0):
            raise ValueError(f"box_spot_span must be a finite number >= 0, got {self.box_spot_span}")
        if not (math.isfinite(self.refine_cut) and self.refine_cut >= 0):
            raise ValueError(f"refine_cut must be a finite number >= 0, got {self.refine_cut}")
        if not 0 <= self.refine_cut_walk <= 1:
            raise ValueError(f"refine_cut_walk must be in [0, 1], got {self.refine_cut_walk}")
        if not 0 <= self.colour_rounds_min_share < 1:
            raise ValueError(f"colour_rounds_min_share must be in [0, 1), got {self.colour_rounds_min_share}")
        if not (math.isfinite(self.point_border) and self.point_border >= 0) or not 0 < self.point_border_band < 0.5:
            raise ValueError(f"point_border must be a finite number >= 0 and point_border_band in (0, 0.5), got "
                             f"{self.point_border}, {self.point_border_band}")
        if not (math.isfinite(self.box_inside) and self.box_inside >= 0):
            raise ValueError(f"box_inside must be a finite number >= 0, got {self.box_inside}")
        if not 0 <= self.box_network_scale <= 1:
            raise ValueError(f"box_network_scale must be in [0, 1], got {self.box_network_scale}")
        if self.box_colour_rounds < 0 or self.colour_rounds < 0:
            raise ValueError(f"box_colour_rounds and colour_rounds must be >= 0, got box_colour_rounds="
                             f"{self.box_colour_rounds}, colour_rounds={self.colour_rounds}")
        if not 0 < self.box_sure_at < 1 or not (math.isfinite(self.box_sure_strength) and self.box_sure_strength >= 0):
            raise ValueError(f"box_sure_at must be in (0, 1) and box_sure_strength a finite number >= 0, got "
                             f"{self.box_sure_at}, {self.box_sure_strength}")
        if not 0 <= self.box_fill_least < 1 or not (math.isfinite(self.box_fill_strength)
                                                   and self.box_fill_strength >= 0):
            raise ValueError(f"box_fill_least must be in [0, 1) and box_fill_strength a finite number >= 0, got "
                             f"{self.box_fill_least}, {self.box_fill_strength}")
        if not (0 <= self.box_cover_least <= 1 and 0 <= self.box_cover_below <= 1
                and math.isfinite(self.box_cover_strength) and self.box_cover_strength >= 0):
            raise ValueError(f"box_cover_least and box_cover_below must be in [0, 1] and box_cover_strength a finite "
                             f"number >= 0, got {self.box_cover_least}, {self.box_cover_below}, {self.box_cover_strength}")
        for name in ("box_hole_fill", "hole_fill"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.box_refine_strength <= 0:
            raise ValueError(f"box_refine_strength must be > 0, got {self.box_refine_strength}")
        if self.box_tightness < 0 or not 0 <= self.box_slack < 0.5 or self.box_outside < 0 or self.box_points < 1 or self.box_fit_colour < 0:
            raise ValueError(f"box_tightness, box_outside and box_fit_colour must be >= 0, box_slack in [0, 0.5) and "
                             f"box_points >= 1, got box_tightness={self.box_tightness}, box_outside={self.box_outside}, "
                             f"box_fit_colour={self.box_fit_colour}, box_slack={self.box_slack}, box_points={self.box_points}")
        if self.views < 1 or not 0 < self.view_scale <= 1 or self.view_colour < 0:
            raise ValueError(f"views must be >= 1, view_scale in (0, 1] and view_colour >= 0, got "
                             f"{self.views}, {self.view_scale}, {self.view_colour}")


def config_dict(network: NetworkConfig, config: FitConfig) -> dict:
    """Plain-dict view of both configs (JSON-serialisable) for result metadata."""
    return {"network": asdict(network), "fit": asdict(config)}


def given(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The overrides that were actually given: ``None`` means "keep the preset's value".

    CLI flags, web requests and bench options all map unset options to ``None``; this is
    the one place that drops them.
    """
    return {k: v for k, v in (overrides or {}).items() if v is not None}


def input_channels(config: FitConfig) -> int:
    """Channels of the network's input for ``config.input``: noise, + RGB, + (y, x)."""
    return config.input_channels + (3 if "image" in config.input else 0) + (2 if config.input.endswith("xy") else 0)


def working_shape(shape: tuple[int, int], working_size: int | None) -> tuple[int, int]:
    """Working resolution ``(h, w)``: longest side ``working_size``, never upscaled."""
    h, w = shape
    if working_size is None or max(h, w) <= working_size:
        return h, w
    s = working_size / max(h, w)
    return max(8, round(h * s)), max(8, round(w * s))


def fit_shape(shape: tuple[int, int], network: NetworkConfig, config: FitConfig) -> tuple[int, int]:
    """The resolution ``(h, w)`` the network is fitted at, for an image of ``shape``.

    :func:`working_shape`, then stretched where needed: every scale of the network halves
    the size and the coarsest still needs more than one pixel per side (BatchNorm and
    reflection padding), so a side below ``2**depth + 1`` is stretched to that. Any image
    of at least 2x2 pixels can therefore be fitted.
    """
    h, w = working_shape(shape, config.working_size)
    min_side = 2**network.depth + 1
    return max(h, min_side), max(w, min_side)
