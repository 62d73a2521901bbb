"""Fitting DIPSEG to one image: a DIP network per image, from a fixed input, to RGB + sparse labels.

The loss is ``rgb_weight * MSE(rgb, image) + CE(logits at labelled pixels)``, plus an
optional appearance-weighted pairwise term (see :class:`FitConfig`). The fit runs at a
working resolution; the class probabilities are brought back to full resolution
(bilinear, then optionally an edge-aware guided filter) before the argmax.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .colour import colour_logits, coverage_weight
from .labels import IGNORE, labelled_classes, validate_image, validate_labels
from .network import NetworkConfig, SkipNet
from .refine import box_prior, downscale_labels, guided_filter, random_walk_refine

INPUT_MODES = ("noise", "noise+image", "noise+image+xy")
REFINERS = ("none", "guided", "random-walk")


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
    crf_weight : float
        Weight of a dense-CRF loss (Tang et al. 2018) on the probabilities pooled to a
        grid whose longest side is ``crf_size``: ``1 - tr(P W P^T) / sum(W)`` with a fully
        connected Gaussian affinity ``W`` over position and colour. 0 disables it.
    crf_size : int
        Longest side of the dense-CRF grid (the affinity has ``(grid pixels)^2`` entries).
    crf_sigma_xy : float
        Spatial bandwidth as a fraction of the image's longest side.
    crf_sigma_rgb : float
        Colour bandwidth on the 0..1 RGB scale.
    class_balanced : bool
        Average the CE per class first, so a class with many labelled pixels does not
        drown one with few.
    box_prior : float
        Strength of the spatial prior that a class stays near the bounding box of its
        labels (see :func:`dipseg.refine.box_prior`), added to the logits; 0 disables it.
    box_margin : float
        Enlargement of each class's label box, as a fraction of its size per side.
    box_falloff : float
        Distance outside the box, as a fraction of the image's longest side, over which
        the prior's penalty grows by ``box_prior`` nats.
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
    refine_beta : float
        Random-walk refinement: edge sensitivity (see :func:`dipseg.refine.edge_weights`).
    refine_size : int or None
        Random-walk refinement runs at this longest side (None: full resolution), then is
        upsampled and snapped to the image's edges with the guided filter.
    colour_weight : float
        Weight of a per-class colour model (a Gaussian mixture over CIELAB fitted to each
        class's labelled pixels, see :func:`dipseg.colour.colour_logits`) added to the
        logits before the refinement; 0 disables it. It carries appearance to parts of an
        object far from its labels, as GrabCut's colour models do.
    colour_coverage : bool
        Scale ``colour_weight`` by :func:`dipseg.colour.coverage_weight`: trust the colour
        models less when each class's labels sit in a few compact spots.
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
    crf_weight: float = 0.0
    crf_size: int = 64
    crf_sigma_xy: float = 0.15
    crf_sigma_rgb: float = 0.06
    class_balanced: bool = True
    box_prior: float = 0.0
    box_margin: float = 0.15
    box_falloff: float = 0.1
    refine: str = "none"
    refine_radius: int = 4
    refine_eps: float = 1e-3
    refine_strength: float = 1e-5
    refine_beta: float = 25_000.0
    refine_size: int | None = 256
    colour_weight: float = 0.0
    colour_coverage: bool = True
    colour_floor: float | None = -4.0
    colour_clip: float = 10.0
    colour_components: int = 5
    quick_preview: bool = True
    early_stop: bool = False
    early_stop_tol: float = 0.005
    check_every: int = 25

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
        if self.colour_weight < 0 or self.colour_clip <= 0 or self.colour_components < 1:
            raise ValueError(
                "colour_weight must be >= 0, colour_clip > 0 and colour_components >= 1, got "
                f"{self.colour_weight}, {self.colour_clip}, {self.colour_components}"
            )
        if self.check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {self.check_every}")


@dataclass
class Progress:
    """What a fit reports to its callback after each step.

    Attributes
    ----------
    iteration : int
        Steps done so far (1-based).
    total : int
        Planned steps.
    losses : dict of str to float
        ``total``, ``rgb``, ``ce`` and ``pairwise`` of this step.
    preview : ndarray (h, w) int64 or None
        Current class map (original class ids) at working resolution; set every
        ``preview_every`` steps and at the last one.
    elapsed : float
        Seconds since the fit started.
    """

    iteration: int
    total: int
    losses: dict[str, float]
    preview: np.ndarray | None
    elapsed: float


Callback = Callable[[Progress], "bool | None"]


@dataclass
class FitState:
    """Network, optimiser and input of a finished fit, reusable as a warm start."""

    model: SkipNet
    optimizer: torch.optim.Optimizer
    net_input: torch.Tensor
    class_ids: tuple[int, ...]
    work_shape: tuple[int, int]
    network: NetworkConfig
    config: FitConfig


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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU.

    Raises
    ------
    ValueError
        Unknown device name, or CUDA asked for but not available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but CUDA is not available here; use --device cpu or auto")
    return torch.device(device)


def working_shape(shape: tuple[int, int], working_size: int | None) -> tuple[int, int]:
    """Working resolution ``(h, w)``: longest side ``working_size``, never upscaled."""
    h, w = shape
    if working_size is None or max(h, w) <= working_size:
        return h, w
    s = working_size / max(h, w)
    return max(8, round(h * s)), max(8, round(w * s))


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op threads (None leaves them alone)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _make_input(
    image_t: torch.Tensor, cfg: FitConfig, generator: torch.Generator
) -> torch.Tensor:
    _, _, h, w = image_t.shape
    noise = torch.rand((1, cfg.input_channels, h, w), generator=generator, device=image_t.device) * cfg.input_scale
    parts = [noise]
    if cfg.input != "noise":
        parts.append(image_t - 0.5)
    if cfg.input == "noise+image+xy":
        ys = torch.linspace(-0.5, 0.5, h, device=image_t.device).view(1, 1, h, 1).expand(1, 1, h, w)
        xs = torch.linspace(-0.5, 0.5, w, device=image_t.device).view(1, 1, 1, w).expand(1, 1, h, w)
        parts += [ys, xs]
    return torch.cat(parts, 1)


def _pairwise_potts(prob: torch.Tensor, image_t: torch.Tensor, sigma: float) -> torch.Tensor:
    """Appearance-weighted Potts relaxation over 8-neighbours at dilations 1 and 3.

    ``sum w_ij (1 - <p_i, p_j>)`` with ``w_ij = exp(-|I_i - I_j|^2 / 2 sigma^2)``: cheap to
    cut between pixels of different colour, expensive between similar ones, which
    propagates labels by appearance.
    """
    total = prob.new_zeros(())
    count = 0
    for d in (1, 3):
        for dy, dx in ((0, d), (d, 0), (d, d), (d, -d)):
            h, w = prob.shape[-2:]
            ys, ye = max(dy, 0), h + min(dy, 0)
            xs, xe = max(dx, 0), w + min(dx, 0)
            p0 = prob[..., ys:ye, xs:xe]
            p1 = prob[..., ys - dy : ye - dy, xs - dx : xe - dx]
            i0 = image_t[..., ys:ye, xs:xe]
            i1 = image_t[..., ys - dy : ye - dy, xs - dx : xe - dx]
            wgt = torch.exp(-((i0 - i1) ** 2).sum(1) / (2 * sigma**2))
            total = total + (wgt * (1 - (p0 * p1).sum(1))).mean()
            count += 1
    return total / count


def _dense_affinity(image_t: torch.Tensor, cfg: "FitConfig") -> tuple[torch.Tensor, tuple[int, int]]:
    """Fully connected Gaussian affinity over a coarse grid of the image, zero diagonal."""
    h, w = image_t.shape[-2:]
    s = min(1.0, cfg.crf_size / max(h, w))
    gh, gw = max(2, round(h * s)), max(2, round(w * s))
    rgb = F.adaptive_avg_pool2d(image_t, (gh, gw))[0].reshape(3, -1).T / cfg.crf_sigma_rgb
    ys, xs = torch.meshgrid(
        torch.arange(gh, device=image_t.device, dtype=torch.float32),
        torch.arange(gw, device=image_t.device, dtype=torch.float32),
        indexing="ij",
    )
    xy = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1) / (cfg.crf_sigma_xy * max(gh, gw))
    feats = torch.cat([xy, rgb], 1)
    aff = torch.exp(-0.5 * torch.cdist(feats, feats).square())
    aff.fill_diagonal_(0)
    return aff, (gh, gw)


def _dense_crf_loss(prob: torch.Tensor, aff: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``1 - tr(P W P^T) / sum(W)``: the relaxed Potts energy of Tang et al. 2018, normalised."""
    p = F.adaptive_avg_pool2d(prob, grid)[0].reshape(prob.shape[1], -1)
    return 1 - (p @ aff * p).sum() / aff.sum()


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
        fit, which then returns the current prediction with ``stopped="cancelled"``.
    preview_every : int, optional
        Steps between previews passed to the callback (default ``config.check_every``).
    warm_start : FitState, optional
        State of a previous fit on the same image; reused when the labelled classes and
        working resolution are unchanged (continues from its weights), ignored otherwise.
    threads : int, optional
        torch intra-op threads during this fit (set 1 when fits run side by side).

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
    labels = validate_labels(labels, shape=image.shape[:2])
    class_ids = labelled_classes(labels)
    H, W = image.shape[:2]
    k = len(class_ids)
    if k == 1:
        classes = np.full((H, W), class_ids[0], dtype=np.int64)
        probs = np.ones((H, W, 1), dtype=np.float32)
        if callback is not None:
            callback(Progress(0, 0, {}, classes, 0.0))
        return FitResult(classes, probs, class_ids, 0, "single-class", {}, time.perf_counter() - t0)
    dev = resolve_device(device)
    preview_every = preview_every or config.check_every

    with torch_threads(threads):
        return _fit(image, labels, class_ids, network, config, seed, dev, callback, preview_every, warm_start, t0)


def _fit(image, labels, class_ids, network, cfg, seed, dev, callback, preview_every, warm_start, t0) -> FitResult:
    H, W = image.shape[:2]
    k = len(class_ids)
    h, w = working_shape((H, W), cfg.working_size)
    # Every scale of the network halves the size; the coarsest still needs > 1 pixel per
    # side for BatchNorm and reflection padding, so thin images are stretched to fit.
    min_side = 2**network.depth + 1
    h, w = max(h, min_side), max(w, min_side)

    full_t = torch.tensor(image, device=dev).permute(2, 0, 1)[None].float() / 255.0
    image_t = F.interpolate(full_t, size=(h, w), mode="area") if (h, w) != (H, W) else full_t

    # Labelled pixels as points, sampled from the working-resolution logits at their exact
    # (sub-pixel) position, so single-pixel seeds survive any downscaling.
    ys, xs = np.nonzero(labels != IGNORE)
    remap = np.full(labels.max() + 1, -1, dtype=np.int64)
    remap[class_ids] = np.arange(k)
    targets = torch.from_numpy(remap[labels[ys, xs]]).to(dev)
    gx = (xs + 0.5) / W * 2 - 1
    gy = (ys + 0.5) / H * 2 - 1
    grid = torch.from_numpy(np.stack([gx, gy], -1).astype(np.float32)).to(dev).view(1, 1, -1, 2)
    counts = torch.bincount(targets, minlength=k).float()
    point_w = (1.0 / counts[targets]) / k if cfg.class_balanced else torch.full_like(targets, 1.0 / len(targets), dtype=torch.float32)

    gen = torch.Generator(device=dev).manual_seed(seed)
    reuse = (
        warm_start is not None
        and warm_start.class_ids == tuple(int(c) for c in class_ids)
        and warm_start.work_shape == (h, w)
        and warm_start.network == network
        and warm_start.config.input == cfg.input
    )
    if reuse:
        model, optimizer, net_input = warm_start.model, warm_start.optimizer, warm_start.net_input
    else:
        net_input = _make_input(image_t, cfg, gen)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            model = SkipNet(net_input.shape[1], k, network).to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    aff = _dense_affinity(image_t, cfg) if cfg.crf_weight > 0 else None
    prior_t = None
    if cfg.box_prior > 0:
        prior_t = torch.from_numpy(box_prior(labels, class_ids, (h, w), cfg.box_margin, cfg.box_prior, cfg.box_falloff))[None].to(dev)

    def predict_work(logits: torch.Tensor) -> np.ndarray:
        return class_ids[logits.argmax(1)[0].cpu().numpy()]

    losses: dict[str, float] = {}
    stopped, it = "done", 0
    if callback is not None and cfg.quick_preview and not reuse:
        # A first answer in milliseconds, before the network has learnt anything: the
        # labels diffused along image edges under the box prior, at working resolution.
        quick = _quick_preview(image_t, labels, class_ids, cfg)
        if callback(Progress(0, cfg.iterations, {}, quick, time.perf_counter() - t0)) is False:
            stopped = "cancelled"
    prev_pred: torch.Tensor | None = None
    ema: torch.Tensor | None = None
    logits = None
    for it in range(1, cfg.iterations + 1 if stopped == "done" else 1):
        x = net_input
        if cfg.reg_noise_std > 0:
            jitter = torch.randn(net_input.shape, generator=gen, device=dev) * cfg.reg_noise_std
            x = net_input + jitter
        rgb, logits = model(x)
        if prior_t is not None:
            logits = logits + prior_t
        point_logits = F.grid_sample(logits, grid, mode="bilinear", align_corners=False)[0, :, 0].T
        ce = (F.cross_entropy(point_logits, targets, reduction="none") * point_w).sum()
        loss = ce
        rgb_loss = F.mse_loss(rgb, image_t) if cfg.rgb_weight > 0 else torch.zeros((), device=dev)
        loss = loss + cfg.rgb_weight * rgb_loss
        pw = torch.zeros((), device=dev)
        if cfg.pairwise_weight > 0:
            pw = _pairwise_potts(torch.softmax(logits, 1), image_t, cfg.pairwise_sigma)
            loss = loss + cfg.pairwise_weight * pw
        crf = torch.zeros((), device=dev)
        if aff is not None:
            crf = _dense_crf_loss(torch.softmax(logits, 1), *aff)
            loss = loss + cfg.crf_weight * crf
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses = {"total": loss.item(), "rgb": rgb_loss.item(), "ce": ce.item(), "pairwise": pw.item(), "crf": crf.item()}

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
            preview = predict_work(logits.detach()) if (want_preview or stopped == "early") else None
            if callback(Progress(it, cfg.iterations, losses, preview, time.perf_counter() - t0)) is False:
                stopped = "cancelled"
        if stopped != "done":
            break

    # Final prediction from the un-jittered input. BatchNorm stays in training mode (batch
    # statistics of this one image), as in the official DIP code: that is what the fit saw.
    with torch.no_grad():
        _, logits = model(net_input)
    prob = _full_resolution(image, labels, class_ids, logits, cfg, seed)
    classes = class_ids[prob.argmax(-1)]
    # The user's labels are ground truth where they exist.
    seeded = labels != IGNORE
    classes[seeded] = labels[seeded]
    state = FitState(model, optimizer, net_input, tuple(int(c) for c in class_ids), (h, w), network, cfg)
    return FitResult(
        classes.astype(np.int64), prob, class_ids, it, stopped, losses, time.perf_counter() - t0, state
    )


def _quick_preview(image_t: torch.Tensor, labels, class_ids, cfg: FitConfig) -> np.ndarray:
    """Class map (h, w) from the box prior and a random walk alone: no network involved."""
    h, w = image_t.shape[-2:]
    small = (image_t[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    prior = torch.softmax(torch.from_numpy(box_prior(labels, class_ids, (h, w), cfg.box_margin, max(cfg.box_prior, 1.0), cfg.box_falloff)), 0)
    prob = random_walk_refine(small, prior.permute(1, 2, 0).numpy(), downscale_labels(labels, (h, w)), class_ids,
                              cfg.refine_strength, cfg.refine_beta)
    return class_ids[prob.argmax(-1)]


def _probs_at(logits: torch.Tensor, image: np.ndarray, labels, class_ids, cfg: FitConfig, seed: int) -> np.ndarray:
    """Softmax of the logits resized to ``image``'s size plus the box and colour priors, (h, w, k)."""
    shape = image.shape[:2]
    up = F.interpolate(logits, size=shape, mode="bilinear", align_corners=False) if logits.shape[-2:] != shape else logits
    up = up[0].cpu().numpy()
    if cfg.box_prior > 0:
        up = up + box_prior(labels, class_ids, shape, cfg.box_margin, cfg.box_prior, cfg.box_falloff)
    if cfg.colour_weight > 0:
        from .baselines import lab_features

        weight = cfg.colour_weight * (coverage_weight(labels, class_ids) if cfg.colour_coverage else 1.0)
        up = up + weight * colour_logits(lab_features(image), downscale_labels(labels, shape), class_ids,
                                         cfg.colour_components, cfg.colour_clip, cfg.colour_floor, seed)
    return torch.softmax(torch.from_numpy(up), 0).permute(1, 2, 0).numpy().astype(np.float32)


def _full_resolution(image, labels, class_ids, logits, cfg: FitConfig, seed: int) -> np.ndarray:
    """Class probabilities at the image's resolution, refined as ``cfg.refine`` says."""
    H, W = image.shape[:2]
    guide = None
    if cfg.refine == "random-walk":
        import cv2

        rs = working_shape((H, W), cfg.refine_size)
        small = cv2.resize(image, (rs[1], rs[0]), interpolation=cv2.INTER_AREA) if rs != (H, W) else image
        prob = _probs_at(logits, small, labels, class_ids, cfg, seed)
        prob = random_walk_refine(small, prob, downscale_labels(labels, rs), class_ids,
                                  cfg.refine_strength, cfg.refine_beta)
        if rs == (H, W):
            return prob
        prob = cv2.resize(prob, (W, H), interpolation=cv2.INTER_LINEAR)
        prob = prob[..., None] if prob.ndim == 2 else prob
        guide = True
    else:
        prob = _probs_at(logits, image, labels, class_ids, cfg, seed)
    if cfg.refine == "guided" or guide:
        prob = guided_filter(image.astype(np.float32) / 255.0, np.ascontiguousarray(prob), cfg.refine_radius, cfg.refine_eps)
        prob = np.clip(prob, 0, None)
        prob /= np.maximum(prob.sum(-1, keepdims=True), 1e-8)
    return prob


def config_dict(network: NetworkConfig, config: FitConfig) -> dict:
    """Plain-dict view of both configs (JSON-serialisable) for result metadata."""
    return {"network": asdict(network), "fit": asdict(config)}


def gflop_per_step(network: NetworkConfig, config: FitConfig, shape: tuple[int, int], num_classes: int) -> float:
    """Approximate GFLOP of one training step (forward + backward ~ 3x forward convs)."""
    from .network import conv_flops

    h, w = working_shape(shape, config.working_size)
    cin = config.input_channels + (0 if config.input == "noise" else 3) + (2 if config.input.endswith("xy") else 0)
    model = SkipNet(cin, num_classes, network)
    return 3 * conv_flops(model, (1, cin, h, w)) / 1e9

