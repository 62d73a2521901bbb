"""What a server is started with: one frozen :class:`Settings`, checked once at start-up.

Every part of the app (store, job queue, routes) reads its limits and folders from here, so
a bad folder, class list, preset or limit is refused before the server listens.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ..api import dipseg_config
from ..dip.config import WARM_FRACTION, given
from ..dip.presets import CLICK_PRESET, DEFAULT_PRESET, PRESETS, Preset
from ..io import DEFAULT_MAX_PIXELS, InputError
from ..palette import VOC_CLASSES

DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024
DEFAULT_QUEUE_SIZE = 8
DEFAULT_MAX_JSON_BYTES = 8 * 1024 * 1024
"""Largest JSON body (labels as run-length code or PNG): a painted 4096x4096 image takes well under 1 MiB."""
DEFAULT_MAX_FIT_PIXELS = 2048 * 2048
"""Larger images are fitted at a downscaled copy of this many pixels and the mask is scaled
back (nearest neighbour, painted pixels kept): a fit's memory then stays bounded (docs/web.md)."""
DEFAULT_BODY_BUDGET_BYTES = 256 * 1024 * 1024
"""Request-body bytes held by all requests together; beyond it a request gets 429."""
DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a request body may stall between two chunks before the request is answered 408."""
MAX_CLASSES = 255
"""Label value 255 means unlabelled on the wire and in label PNGs, so it cannot be a class."""
MAX_CLASS_NAME = 64


def check_classes(names: list[str], where: str = "classes") -> tuple[str, ...]:
    """Validate class names: 2..255 of them, unique, 1..64 characters each.

    Raises
    ------
    InputError
        The message names ``where`` and the offending name.
    """
    names = [str(n).strip() for n in names]
    if len(names) < 2:
        raise InputError(f"{where}: need at least 2 class names (one per line), got {len(names)}")
    if len(names) > MAX_CLASSES:
        raise InputError(f"{where}: at most {MAX_CLASSES} classes (label value 255 means unlabelled), got {len(names)}")
    for n in names:
        if not n or len(n) > MAX_CLASS_NAME:
            raise InputError(f"{where}: class names must be 1..{MAX_CLASS_NAME} characters, got {n!r}")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise InputError(f"{where}: class name {n!r} appears twice")
        seen.add(n)
    return tuple(names)


def load_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from a text file, one per line (blank lines and ``#`` comments skipped).

    Raises
    ------
    InputError
        Unreadable file, fewer than 2 or more than 255 names, duplicates or overlong names.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"classes file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"classes path is a folder, not a file: {path}") from None
    except UnicodeDecodeError:
        raise InputError(f"classes file {path} is not UTF-8 text; write one class name per line") from None
    except OSError as exc:
        raise InputError(f"cannot read classes file {path}: {exc.strerror or exc}") from None
    names = [line.strip() for line in text.splitlines()]
    return check_classes([n for n in names if n and not n.startswith("#")], where=f"classes file {path}")


@dataclass(frozen=True)
class Settings:
    """Configuration of one annotation server (see :func:`dipseg.web.create_app`).

    Attributes
    ----------
    images_dir : Path or None
        Folder of images to annotate; None serves uploads only.
    out_dir : Path
        Where masks, labels and metadata are saved (resolved to an absolute path).
    classes : tuple of str
        Class names; class ``i`` has VOC palette colour ``i``.
    preset : str
        DIPSEG preset name.
    fit_overrides : mapping
        :class:`dipseg.dip.config.FitConfig` fields replacing the preset's (``None`` dropped).
    max_upload_bytes, max_pixels : int
        Upload limits.
    queue_size, workers : int
        Fits that may wait, and fits that run at once.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    warm_fraction : float
        Fraction of the preset's steps a warm-started fit runs.
    allowed_hosts : tuple of str or None
        Accepted Host header names (None accepts any).
    heartbeat : float
        Seconds between SSE keep-alive comments.
    token : str
        This server's secret: every state-changing request carries it in ``X-Dipseg-Token``
        (the page reads it from ``/api/config``, which other sites cannot read); random per start.
    require_token : bool
        Every request must prove it knows ``token`` (header, ``Authorization: Bearer``, or the
        cookie set by opening ``/?token=...``): set when the server listens beyond localhost.
    max_json_bytes : int
        Largest JSON body.
    max_fit_pixels : int
        Images with more pixels are fitted at a downscaled copy (see :data:`DEFAULT_MAX_FIT_PIXELS`).
    body_budget_bytes : int
        Request-body bytes held by all requests at once (429 beyond).
    body_timeout : float
        Seconds a request body may stall (408 beyond).
    boxes : Path or None
        Boxes each image of ``images_dir`` starts with (:class:`dipseg.boxio.BoxSource`: a
        COCO JSON of the folder's images, or a folder of per-image VOC XML / COCO JSON /
        CSV files named after the images); an image's own saved or edited boxes come first.
    tight_boxes : bool
        Whether those boxes touch their objects (detection data's do): the page's
        *Tight boxes* starts ticked for an image that has them.
    preset_config : Preset
        Derived: the preset with ``fit_overrides`` applied, as every fit uses it unless its
        request names another (:meth:`config_for`).
    preset_configs : mapping of str to Preset
        Derived: every preset of the registry with ``fit_overrides`` applied, the presets a
        request may name (those the overrides do not fit are left out).

    Raises
    ------
    ValueError
        Bad limits, preset or fit option; :class:`dipseg.io.InputError` for a bad folder or
        class list.
    """

    images_dir: Path | None = None
    out_dir: Path = Path("dipseg-out")
    classes: tuple[str, ...] = VOC_CLASSES
    preset: str = DEFAULT_PRESET
    fit_overrides: Mapping[str, Any] = field(default_factory=dict)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    queue_size: int = DEFAULT_QUEUE_SIZE
    workers: int = 1
    device: str = "auto"
    warm_fraction: float = WARM_FRACTION
    allowed_hosts: tuple[str, ...] | None = None
    heartbeat: float = 2.0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    require_token: bool = False
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    max_fit_pixels: int = DEFAULT_MAX_FIT_PIXELS
    body_budget_bytes: int = DEFAULT_BODY_BUDGET_BYTES
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    boxes: Path | None = None
    tight_boxes: bool = False
    preset_config: Preset = field(init=False, repr=False, compare=False)
    preset_configs: Mapping[str, Preset] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {self.queue_size}")
        if self.max_upload_bytes < 1 or self.max_pixels < 4:
            raise ValueError("max_upload_bytes and max_pixels must be positive")
        if self.max_json_bytes < 1 or self.max_fit_pixels < 4 or self.body_budget_bytes < 1:
            raise ValueError("max_json_bytes, max_fit_pixels and body_budget_bytes must be positive")
        if not self.body_timeout > 0:
            raise ValueError(f"body_timeout must be > 0 seconds, got {self.body_timeout}")
        if len(str(self.token)) < 16:
            raise ValueError("token must be at least 16 characters")
        if not 0 < self.warm_fraction <= 1:
            raise ValueError(f"warm_fraction must be in (0, 1], got {self.warm_fraction}")
        # frozen: the normalised values are set once, here, and never change afterwards
        put = object.__setattr__
        put(self, "preset", self.preset or DEFAULT_PRESET)
        put(self, "fit_overrides", MappingProxyType(given(dict(self.fit_overrides or {}))))
        put(self, "preset_config", dipseg_config("dipseg", self.preset, dict(self.fit_overrides)))
        put(self, "preset_configs", MappingProxyType(_presets_with(dict(self.fit_overrides), self.preset,
                                                                   self.preset_config)))
        put(self, "classes", check_classes(list(self.classes)))
        put(self, "max_upload_bytes", int(self.max_upload_bytes))
        put(self, "max_pixels", int(self.max_pixels))
        put(self, "queue_size", int(self.queue_size))
        put(self, "workers", int(self.workers))
        if self.allowed_hosts is not None:
            put(self, "allowed_hosts", tuple(self.allowed_hosts))

        out_dir = Path(self.out_dir).expanduser().resolve()
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError(f"--out must be a folder, got the file {self.out_dir}")
        if self.images_dir is not None:
            images_dir = Path(self.images_dir).expanduser().resolve()
            if not images_dir.is_dir():
                raise InputError(f"images folder not found: {self.images_dir}")
            if images_dir == out_dir:
                raise InputError("--out must differ from --images: masks are named after the images and would overwrite them")
            put(self, "images_dir", images_dir)
        if self.tight_boxes and self.boxes is None:
            raise InputError("--tight-boxes says how the --boxes given fit their objects; give --boxes too")
        if self.boxes is not None:
            if self.images_dir is None:
                raise InputError("--boxes needs --images: the boxes are found by the folder's image names")
            put(self, "boxes", Path(self.boxes).expanduser().resolve())
        put(self, "out_dir", out_dir)

    def config_for(self, preset: str | None, clicks: bool = False) -> tuple[str, Preset]:
        """The name and configuration of the preset a request names.

        None: :data:`dipseg.dip.presets.CLICK_PRESET` for labels that are clicks (the page's
        Click tool) when this server offers it, else this server's preset.

        Raises
        ------
        InputError
            Not a preset of :attr:`preset_configs`.
        """
        if preset is None:
            if clicks and CLICK_PRESET in self.preset_configs:
                return CLICK_PRESET, self.preset_configs[CLICK_PRESET]
            return self.preset, self.preset_config
        if not isinstance(preset, str) or preset not in self.preset_configs:
            raise InputError(f"unknown preset {preset!r}: send one of {', '.join(self.preset_configs)} "
                             f"(or none for this server's, {self.preset!r})")
        return preset, self.preset_configs[preset]

    @property
    def mode(self) -> str:
        """``folder`` (a ``--images`` folder is walked) or ``upload`` (images come from the page)."""
        return "folder" if self.images_dir is not None else "upload"

    @property
    def capacity(self) -> int:
        """Fits admitted at once (running and waiting); one more is answered 429."""
        return self.workers + self.queue_size

    @property
    def threads(self) -> int | None:
        """torch threads per fit: one when fits run side by side, else torch's default."""
        return 1 if self.workers > 1 else None


def _presets_with(overrides: dict[str, Any], own: str, own_config: Preset) -> dict[str, Preset]:
    """Every registry preset with ``overrides`` applied, the server's own first; those they do not fit are left out."""
    out = {own: own_config}
    for name in PRESETS:
        if name not in out:
            try:
                out[name] = dipseg_config("dipseg", name, overrides)
            except ValueError:
                continue
    return out
