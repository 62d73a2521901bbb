"""Fitting DIPSEG to one image: a DIP network per image, from a fixed input, to RGB + sparse labels.

The loss is ``rgb_weight * MSE(rgb, image) + CE(logits at labelled pixels)``, plus an
optional appearance-weighted pairwise term (:mod:`dipseg.dip.losses`). The fit runs at a
working resolution (:func:`dipseg.dip.config.fit_shape`); the class probabilities are
brought back to full resolution by :func:`dipseg.dip.refine.full_resolution`.
"""

from __future__ import annotations

import time
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from ..boxes import Box, box_classes, box_labels, restrict_to_boxes, validate_boxes
from ..labels import IGNORE, labelled_classes, validate_image, validate_labels
from .augment import Views, flip_average
from .boxterm import BoxTightness, background_points, colour_labels
from .build import build_network, image_channels, make_input
from .colour import colour_logits
from .config import FitConfig, NetworkConfig, fit_shape
from .device import resolve_device, single_threaded_blas, torch_threads
from .holes import fill_box_holes, fill_class_holes
from .losses import PairwisePotts
from .network import SkipNet
from .refine import (Stopped, coarse_resolution, finish_full_resolution, prepare_full_resolution, quick_preview,
                     spatial_prior)


@dataclass
class Progress:
    """What a fit reports to its callback after each step.

    Attributes
    ----------
    iteration : int
        Steps done so far (1-based; 0 for the quick preview sent before the first step).
    total : int
        Planned steps.
    losses : dict of str to float
        ``total``, ``rgb``, ``ce`` and ``pairwise`` (:data:`LOSS_KEYS`; with boxes also ``box``) of this step; NaN at
        iteration 0, before any step, so ``p.losses["total"]`` works in every call.
    preview : ndarray (h, w) int64 or None
        Current class map (original class ids) at working resolution; set every
        ``preview_every`` steps and at the last one.
    elapsed : float
        Seconds since the fit started.
    rgb : ndarray (h, w, 3) uint8 or None
        The network's RGB reconstruction of the image, with every network preview (None
        for the quick preview). A preview at iteration ``i`` shows the network after
        ``i - 1`` Adam steps (the prediction that step ``i`` trained on).
    """

    iteration: int
    total: int
    losses: dict[str, float]
    preview: np.ndarray | None
    elapsed: float
    rgb: np.ndarray | None = None


Callback = Callable[[Progress], "bool | None"]

LOSS_KEYS = ("total", "rgb", "ce", "pairwise")
"""The losses every :class:`Progress` carries."""


def _no_losses() -> dict[str, float]:
    return {k: float("nan") for k in LOSS_KEYS}


@dataclass
class FitState:
    """Network, optimiser and input of a finished fit, reusable as a warm start."""

    model: SkipNet
    optimizer: "FusedAdam | torch.optim.Optimizer"
    net_input: torch.Tensor
    class_ids: tuple[int, ...]
    work_shape: tuple[int, int]
    network: NetworkConfig
    config: FitConfig

    def can_continue(self, shape: tuple[int, int], labels: np.ndarray, network: NetworkConfig, config: FitConfig,
                     class_ids: np.ndarray | None = None) -> bool:
        """Whether a fit of an image of ``shape`` with ``labels`` can start from this state.

        The labelled classes (or ``class_ids``, the fit's classes with boxes), the fitted
        resolution, the network and the input mode must be unchanged (other fit settings,
        e.g. the number of steps, may differ).
        """
        ids = labelled_classes(labels) if class_ids is None else class_ids
        return (
            self.class_ids == tuple(int(c) for c in ids)
            and self.work_shape == fit_shape(shape, network, config)
            and self.network == network
            and self.config.input == config.input
        )


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    classes : ndarray (H, W) int64
        Class per pixel (original class ids).
    probabilities : ndarray (H, W, k) float32
        Softmax over the ``k`` labelled classes, in the order of ``class_ids``.
    class_ids : ndarray (k,) int64
    iterations : int
        Steps actually run.
    stopped : str
        ``"done"``, ``"early"`` (converged), ``"cancelled"`` (callback returned False)
        or ``"single-class"`` (nothing to fit).
    losses : dict of str to float
        Losses of the last step.
    seconds : float
        Wall time of the whole call.
    state : FitState or None
        For a warm start of the next fit on the same image.
    """

    classes: np.ndarray
    probabilities: np.ndarray
    class_ids: np.ndarray
    iterations: int
    stopped: str
    losses: dict[str, float]
    seconds: float
    state: FitState | None = field(default=None, repr=False)


class JitterField:
    """DIP's input jitter (``reg_noise_std``): Gaussian noise of the input's shape, new at every step.

    Drawing ``C x h x w`` normals per step cost about a twelfth of a CPU step; instead one
    field of :data:`JITTER_MARGIN` more pixels per side is drawn once per fit and every step
    takes a window of it at a random offset: every step's jitter is still i.i.d. Gaussian
    per pixel, different from the last step's, and seeded by the fit.
    """

    def __init__(self, shape: tuple[int, ...], std: float, generator: torch.Generator, device: torch.device):
        b, c, h, w = shape
        m = JITTER_MARGIN
        field = torch.randn((b, c, h + m, w + m), generator=generator, device=device) * std
        self.field = field.contiguous(memory_format=torch.channels_last)  # as the input, so windows add fast
        self.offsets = torch.randint(0, m + 1, (4096, 2), generator=generator, device="cpu").tolist()
        self.h, self.w, self.i = h, w, 0

    def next(self) -> torch.Tensor:
        dy, dx = self.offsets[self.i % len(self.offsets)]
        self.i += 1
        return self.field[..., dy : dy + self.h, dx : dx + self.w]


JITTER_MARGIN = 32
"""Extra pixels per side of a :class:`JitterField` (33 x 33 different windows)."""


class FusedAdam:
    """Adam (torch's defaults: betas 0.9 / 0.999, eps 1e-8, no weight decay) in one fused kernel.

    The same update as ``torch.optim.Adam(params, lr, fused=True)``, called directly:
    torch's optimizer classes import ``torch._dynamo`` on first use, ~3 s of a cold
    ``dipseg segment`` that has one second for everything (docs/performance.md).

    Parameters
    ----------
    params : iterable of Tensor
    lr : float
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params, lr: float):
        self.params = [p for p in params if p.requires_grad]
        self.lr = float(lr)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        idx = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not idx:
            return
        steps = [self.steps[i] for i in idx]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            [self.params[i] for i in idx], [self.params[i].grad for i in idx], [self.exp_avg[i] for i in idx],
            [self.exp_avg_sq[i] for i in idx], [], steps, lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
            weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False,
        )


def make_optimizer(model: torch.nn.Module, cfg: FitConfig):
    """Adam on the network's weights, fused into one kernel where torch offers it.

    The network has over a hundred small parameter tensors; the per-tensor Adam spent
    about a sixth of a CPU fit updating them one by one (docs/performance.md).
    """
    if hasattr(torch, "_fused_adam_"):
        return FusedAdam(model.parameters(), cfg.lr)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)  # pragma: no cover - older torch


def fit(
    image: np.ndarray,
    labels: np.ndarray,
    network: NetworkConfig = NetworkConfig(),
    config: FitConfig = FitConfig(),
    *,
    seed: int = 0,
    device: str | torch.device = "auto",
    callback: Callback | None = None,
    preview_every: int | None = None,
    warm_start: FitState | None = None,
    threads: int | None = None,
    boxes: Sequence[Box] | None = None,
    background: int = 0,
    tight_boxes: bool = False,
) -> FitResult:
    """Fit DIPSEG to one image and label every pixel.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8
    labels : ndarray (H, W) int
        Class index at labelled pixels, ``IGNORE`` (-1) elsewhere. Only labelled classes
        can be predicted.
    network : NetworkConfig
    config : FitConfig
    seed : int
        Seeds the network initialisation, the input noise and the jitter: same seed, same
        device and thread count give the same result.
    device : {"auto", "cpu", "cuda"}
    callback : callable, optional
        Called after every step with a :class:`Progress`; returning ``False`` cancels the
        fit, which then returns the current prediction, resized without refinement, with
        ``stopped="cancelled"``. A callback with a ``should_stop`` attribute (a callable
        without arguments) is also asked between the parts of the full-resolution stage;
        True cancels there too.
    preview_every : int, optional
        Steps between previews passed to the callback (default ``config.check_every``).
    warm_start : FitState, optional
        State of a previous fit on the same image; reused when
        :meth:`FitState.can_continue` says so (continues from its weights), ignored otherwise.
    threads : int, optional
        Threads of this fit (set 1 when fits run side by side). With two or more, one of
        them prepares the full-resolution stage (priors, colour models, the random walk's
        factorisation) while the others train the network, so the result is the same as
        with ``threads - 1`` torch threads alone; with one or None, the stage is prepared
        after the fit, on the same thread.
    boxes : list of Box or (class, x0, y0, x1, y1), optional
        Object boxes in pixels (:mod:`dipseg.boxes`); ``labels`` may then be all ``IGNORE``
        (or None). Outside every box is ``background``; each box's class is kept to its
        boxes and pushed to touch every row and column of them (:mod:`dipseg.dip.boxterm`).
    background : int
        The class of pixels outside every box.
    tight_boxes : bool
        The boxes touch their objects on all four sides (boxes of detection data, or
        derived from masks), rather than being drawn around them with a margin: the
        full-resolution stage then favours each box's class inside its boxes by
        ``config.box_inside`` nats (:func:`dipseg.dip.refine.spatial_prior`).

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Bad image, labels of another size, values that are not classes, nothing labelled.
    """
    t0 = time.perf_counter()
    image = validate_image(image)
    H, W = image.shape[:2]
    boxes = validate_boxes(boxes, (H, W), background=background)
    if boxes:
        user = np.full((H, W), IGNORE, np.int64) if labels is None else validate_labels(
            labels, shape=(H, W), allow_empty=True)
        labels = box_labels(boxes, (H, W), user, background)
        class_ids = np.union1d(labelled_classes(labels), box_classes(boxes)).astype(np.int64)
    else:
        if labels is None:
            raise ValueError("give labels, boxes or both")
        labels = validate_labels(labels, shape=image.shape[:2])
        user = labels
        class_ids = labelled_classes(labels)
    k = len(class_ids)
    if k == 1:
        classes = np.full((H, W), class_ids[0], dtype=np.int64)
        probs = np.ones((H, W, 1), dtype=np.float32)
        if callback is not None:
            callback(Progress(0, 0, _no_losses(), classes, 0.0))
        return FitResult(classes, probs, class_ids, 0, "single-class", {}, time.perf_counter() - t0)
    dev = resolve_device(device)
    preview_every = preview_every or config.check_every
    should_stop = getattr(callback, "should_stop", None)
    with single_threaded_blas():
        if threads is not None and threads >= 2:
            # The full-resolution stage needs the image and labels only: its heavy half (colour
            # mixtures, the random walk's sparse LU, the guide's statistics) runs on its own
            # core while the network trains, instead of after it.
            logits_box: Future = Future()
            job = _prepare_pool().submit(_prepare_then_finish, image, labels, class_ids, config, seed, should_stop,
                                         boxes, logits_box, background, tight_boxes)

            def finish(logits):
                logits_box.set_result(logits)
                return job.result()

            try:
                with torch_threads(threads - 1):
                    return _fit(image, labels, class_ids, network, config, seed, dev, callback, preview_every,
                                warm_start, t0, finish, boxes, user, background, tight_boxes)
            finally:
                if not logits_box.done():  # the fit failed or was cancelled: no refinement wanted
                    logits_box.set_result(None)
                wait([job])  # a failed fit still leaves no work behind
        with torch_threads(threads):
            return _fit(image, labels, class_ids, network, config, seed, dev, callback, preview_every, warm_start, t0,
                        lambda logits: finish_full_resolution(
                            prepare_full_resolution(image, labels, class_ids, config, seed, should_stop, boxes, background,
                                                    tight_boxes),
                            logits, should_stop),
                        boxes, user, background, tight_boxes)


def _prepare_then_finish(image, labels, class_ids, config, seed, should_stop, boxes, logits_box: Future,
                         background: int, tight_boxes: bool = False):
    """The whole full-resolution stage on one worker thread: prepare, wait for the logits, finish.

    Everything the stage allocates is also freed on this thread: arrays made on one thread
    and freed on another were never given back to the system (glibc), and the resident
    memory grew by ~50 MiB per fit (docs/performance.md).
    """
    try:
        prepared = prepare_full_resolution(image, labels, class_ids, config, seed, should_stop, boxes, background,
                                           tight_boxes)
    except Stopped:
        prepared = None
    logits = logits_box.result()
    if logits is None:
        return None
    if prepared is None:
        raise Stopped()
    prob = finish_full_resolution(prepared, logits, should_stop)
    del prepared
    return prob


_PREPARE_POOL: ThreadPoolExecutor | None = None
_PREPARE_LOCK = threading.Lock()


def _prepare_pool() -> ThreadPoolExecutor:
    """The threads that run full-resolution stages beside the fits, shared by the whole process.

    Started once rather than per fit. Two workers, so that two fits running side by side
    in one process (the web server's jobs) do not queue behind each other.
    """
    global _PREPARE_POOL
    with _PREPARE_LOCK:
        if _PREPARE_POOL is None:
            _PREPARE_POOL = ThreadPoolExecutor(2, thread_name_prefix="dipseg-prepare")
        return _PREPARE_POOL


def _fit(image, labels, class_ids, network, cfg, seed, dev, callback, preview_every, warm_start, t0,
         finish: Callable, boxes: list = (), user: np.ndarray | None = None, background: int = 0,
         tight_boxes: bool = False) -> FitResult:
    H, W = image.shape[:2]
    k = len(class_ids)
    h, w = fit_shape((H, W), network, cfg)

    full_t = torch.tensor(image, device=dev).permute(2, 0, 1)[None].float() / 255.0
    image_t = F.interpolate(full_t, size=(h, w), mode="area") if (h, w) != (H, W) else full_t

    # Labelled pixels as points, sampled from the working-resolution logits at their exact
    # (sub-pixel) position, so single-pixel seeds survive any downscaling.
    points = labels != IGNORE
    if boxes:
        # every user label, and a seeded subset of the (many, alike) pixels outside the boxes
        points = background_points(boxes, user != IGNORE, labels, cfg.box_points, seed)
    ys, xs = np.nonzero(points)
    remap = np.full(max(int(labels.max()), int(class_ids.max())) + 1, -1, dtype=np.int64)
    remap[class_ids] = np.arange(k)
    targets = torch.from_numpy(remap[labels[ys, xs]]).to(dev)
    gx = (xs + 0.5) / W * 2 - 1
    gy = (ys + 0.5) / H * 2 - 1
    grid = torch.from_numpy(np.stack([gx, gy], -1).astype(np.float32)).to(dev).view(1, 1, -1, 2)
    counts = torch.bincount(targets, minlength=k).float()
    point_w = (1.0 / counts[targets]) / k if cfg.class_balanced else torch.full_like(targets, 1.0 / len(targets), dtype=torch.float32)

    gen = torch.Generator(device=dev).manual_seed(seed)
    reuse = warm_start is not None and warm_start.can_continue((H, W), labels, network, cfg, class_ids)
    if reuse:
        model, optimizer, net_input = warm_start.model, warm_start.optimizer, warm_start.net_input
    else:
        net_input = make_input(image_t, cfg, gen)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            model = build_network(network, cfg, k).to(dev)
        optimizer = make_optimizer(model, cfg)
    # channels-last convolutions are ~10 % faster per step at these small sizes (docs/performance.md)
    model = model.to(memory_format=torch.channels_last)
    net_input = net_input.contiguous(memory_format=torch.channels_last)
    model.train()
    prior_t = None
    if (cfg.box_outside > 0) if boxes else (cfg.box_prior > 0):
        # without box_inside: the network learns the object's extent from the tightness term;
        # the bonus in the fit as well was worse (docs/boxes.md)
        prior_t = torch.from_numpy(spatial_prior(labels, class_ids, (h, w), cfg, boxes, background=background))[None].to(dev)
    if boxes and cfg.box_fit_colour > 0:
        small = (image_t[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        from ..features import lab_features
        from ..labels import downscale_labels

        colour = cfg.box_fit_colour * colour_logits(
            lab_features(small), downscale_labels(colour_labels(boxes, labels), (h, w)), class_ids,
            cfg.colour_components, cfg.colour_clip, cfg.colour_floor, seed)
        colour_t = torch.from_numpy(colour)[None].to(dev)
        prior_t = colour_t if prior_t is None else prior_t + colour_t
    tightness = BoxTightness(boxes, class_ids, (H, W), (h, w), cfg.box_slack) if boxes and cfg.box_tightness > 0 else None

    def predict_work(logits: torch.Tensor) -> np.ndarray:
        return class_ids[logits.argmax(1)[0].cpu().numpy()]

    losses: dict[str, float] = {}
    stopped, it = "done", 0
    if callback is not None and cfg.quick_preview and not reuse:
        # A first answer in milliseconds, before the network has learnt anything: the
        # labels diffused along image edges under the box prior, at working resolution.
        small = (image_t[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        quick = quick_preview(small, labels, class_ids, cfg, boxes, background, tight_boxes)
        if callback(Progress(0, cfg.iterations, _no_losses(), quick, time.perf_counter() - t0)) is False:
            stopped = "cancelled"
    pairwise = PairwisePotts(image_t, cfg.pairwise_sigma) if cfg.pairwise_weight > 0 else None
    jitter = JitterField(net_input.shape, cfg.reg_noise_std, gen, dev) if cfg.reg_noise_std > 0 else None
    views = Views(cfg, gen, image_channels(cfg)) if cfg.views > 1 else None
    prev_pred: torch.Tensor | None = None
    ema: torch.Tensor | None = None
    logits = None
    steps = cfg.iterations if cfg.use_network else 0
    for it in range(1, steps + 1 if stopped == "done" else 1):
        x = net_input if jitter is None else net_input + jitter.next()
        if views is None:
            x_b, image_b, prior_b, grid_b, valid = x, image_t, prior_t, grid, None
        else:
            vb = views.batch(x, image_t, prior_t, grid)
            x_b, image_b, prior_b, grid_b, valid = vb.inputs, vb.images, vb.priors, vb.grid, vb.valid
        rgb, logits_b = model(x_b)
        if prior_b is not None:
            logits_b = logits_b + prior_b
        point_b = F.grid_sample(logits_b, grid_b, mode="bilinear", align_corners=False)[:, :, 0]  # (V, k, P)
        ce_b = F.cross_entropy(point_b, targets.expand(len(point_b), -1), reduction="none") * point_w
        if valid is None:
            ce = ce_b.sum()
        else:
            # each view's CE over its visible labelled pixels, re-normalised, then averaged over views
            ce_b = ce_b * valid
            ce = (ce_b.sum(1) / (point_w * valid).sum(1).clamp_min(1e-8)).mean()
        logits, point_logits = logits_b[:1], point_b[0].T
        loss = ce
        rgb_loss = F.mse_loss(rgb, image_b) if cfg.rgb_weight > 0 else torch.zeros((), device=dev)
        loss = loss + cfg.rgb_weight * rgb_loss
        pw = torch.zeros((), device=dev)
        box_loss = torch.zeros((), device=dev)
        if pairwise is not None or tightness is not None:
            prob = torch.softmax(logits, 1)
            if pairwise is not None:
                # on the image itself (view 0): its weights are computed once per fit
                pw = pairwise(prob)
                loss = loss + cfg.pairwise_weight * pw
            if tightness is not None:
                box_loss = tightness(prob)
                loss = loss + cfg.box_tightness * box_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses = {"total": loss.item(), "rgb": rgb_loss.item(), "ce": ce.item(), "pairwise": pw.item()}
        if tightness is not None:
            losses["box"] = box_loss.item()

        check = it % cfg.check_every == 0
        want_preview = callback is not None and (it % preview_every == 0 or it == cfg.iterations)
        if cfg.early_stop:
            # The jittered input makes single-step predictions flicker at boundaries; an
            # exponential average of the probabilities is what we test for convergence.
            with torch.no_grad():
                p_now = torch.softmax(logits.detach(), 1)
                ema = p_now if ema is None else 0.8 * ema + 0.2 * p_now
                if check:
                    pred = ema.argmax(1)
                    fitted = bool((point_logits.argmax(1) == targets).all())
                    if prev_pred is not None and fitted:
                        if float((pred != prev_pred).float().mean()) < cfg.early_stop_tol:
                            stopped = "early"
                    prev_pred = pred
        if callback is not None:
            preview = rgb_view = None
            if want_preview or stopped == "early":
                preview = predict_work(logits.detach())
                rgb_view = (rgb[0].detach().permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            if callback(Progress(it, cfg.iterations, losses, preview, time.perf_counter() - t0, rgb_view)) is False:
                stopped = "cancelled"
        if stopped != "done":
            break

    # Final prediction from the un-jittered input. BatchNorm stays in training mode (batch
    # statistics of this one image), as in the official DIP code: that is what the fit saw.
    with torch.no_grad():
        if not cfg.use_network:
            logits = torch.zeros((1, k, h, w), device=dev)
        elif cfg.tta_flip:
            logits = flip_average(model, net_input)
        else:
            _, logits = model(net_input)

    prob = None
    if stopped != "cancelled":
        try:
            # a cancel that comes after the last step must not wait for the whole refinement
            prob = finish(logits)
        except Stopped:
            stopped = "cancelled"
    if prob is None:
        prob = coarse_resolution((H, W), logits)
    classes = class_ids[prob.argmax(-1)]
    # The user's labels are ground truth where they exist (with boxes: and outside every box is background).
    seeded = labels != IGNORE
    classes[seeded] = labels[seeded]
    if boxes:
        classes = restrict_to_boxes(classes, boxes, background, user)
        if tight_boxes:
            classes = fill_box_holes(classes, boxes, cfg.box_hole_fill, background, user)
    else:
        classes = fill_class_holes(classes, cfg.hole_fill, background, labels)
    state = FitState(model, optimizer, net_input, tuple(int(c) for c in class_ids), (h, w), network, cfg)
    return FitResult(
        classes.astype(np.int64), prob, class_ids, it, stopped, losses, time.perf_counter() - t0, state
    )
