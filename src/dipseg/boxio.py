"""Box files annotators exchange, in and out: Pascal VOC XML, COCO JSON, CSV; COCO results with RLE masks.

Readers (:func:`read_boxes`) return :class:`dipseg.boxes.Box` objects in dipseg's pixel-edge
coordinates (:mod:`dipseg.boxes`):

* **Pascal VOC XML** (``<annotation><object><name>dog</name><bndbox><xmin>..``): 1-based,
  inclusive pixel indices, so ``x0 = xmin - 1``, ``x1 = xmax`` (likewise ``y``). Names are
  classes by name (VOC's 20 by default, or the ``classes`` given);
* **COCO JSON** (``{"annotations": [{"bbox": [x, y, w, h], "category_id": 18, "image_id": ..}],
  "categories": [..], "images": [..]}``, or a bare list of annotations): ``x0 = x``,
  ``x1 = x + w``. A category the file names (``categories``) is mapped to a class by that
  name, and a name that is no class is an error: a category's id in another tool's file
  need not be dipseg's class id (COCO's 5 is an airplane, VOC's 5 a bottle). Only a
  category the file does not name is taken as a class id;
* **CSV** ``class,x0,y0,x1,y1`` (an optional header line; ``class`` a name or an id), in
  dipseg's own coordinates.

Class names match whatever their case, spaces, underscores or hyphens (``Dining table``,
``potted_plant``), and with VOC's classes COCO's names of them too (:data:`VOC_ALIASES`:
``airplane``, ``motorcycle``, ``couch``, ``tv``).

Coordinates up to :data:`CLIP_TOLERANCE` pixels outside the image (rounding in other
tools) are clipped to it; anything further out is an error.

:func:`coco_results` writes masks back as COCO annotations: an ``annotations.json`` with one
annotation per box (its class's pixels inside it; per class without boxes), each with its
mask as COCO RLE (``pycocotools.mask.encode``), its ``area`` and its ``bbox``.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .boxes import Box, validate_boxes
from .io import VOC_CLASSES, InputError, csv_rows, read_text

CLIP_TOLERANCE = 1.0
"""Pixels a box may stick out of the image in a file before it is refused (then clipped)."""

FORMATS = ("auto", "voc", "coco", "csv")

VOC_ALIASES = {"airplane": "aeroplane", "motorcycle": "motorbike", "couch": "sofa", "tv": "tvmonitor",
               "monitor": "tvmonitor"}
"""Other data sets' names of VOC classes (COCO's), accepted when the classes are VOC's."""


def _key(name: str) -> str:
    """A class name as compared: lower case, without spaces, underscores or hyphens."""
    return re.sub(r"[\s_\-]+", "", str(name).lower())


def _lookup(name: str, classes: Sequence[str]) -> int | None:
    """The id of class ``name`` (:func:`_key`, then :data:`VOC_ALIASES` with VOC's classes), else None."""
    keys = {_key(c): i for i, c in enumerate(classes)}
    key = _key(name)
    if key in keys:
        return keys[key]
    if tuple(classes) == tuple(VOC_CLASSES) and key in VOC_ALIASES:
        return keys[VOC_ALIASES[key]]
    return None


def class_id(name: str, classes: Sequence[str], where: str) -> int:
    """The id of class ``name`` in ``classes`` (case, spaces and hyphens ignored; COCO's names of VOC
    classes accepted), or ``name`` itself if it is a whole number.

    Raises
    ------
    InputError
        Neither; the message names ``where`` and the known classes.
    """
    text = str(name).strip()
    found = _lookup(text, classes)
    if found is not None:
        return found
    if text.isdigit():
        return int(text)
    raise InputError(f"{where}: unknown class {text!r}; known: {', '.join(classes)}; other classes need a "
                     "list of class names (--classes FILE)")


def _clip(box: Box, shape: tuple[int, int] | None, where: str) -> Box:
    if shape is None:
        return box
    h, w = shape
    t = CLIP_TOLERANCE
    if box.x0 < -t or box.y0 < -t or box.x1 > w + t or box.y1 > h + t:
        raise InputError(f"{where}: box ({box.x0:g}, {box.y0:g}, {box.x1:g}, {box.y1:g}) is outside the {w}x{h} "
                         "(WxH) image")
    return Box(box.cls, max(0.0, box.x0), max(0.0, box.y0), min(float(w), box.x1), min(float(h), box.y1))


def _num(text: Any, where: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return v


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def detect_format(path: Path, text: str) -> str:
    """``voc``, ``coco`` or ``csv`` from the file's suffix, else from its first character."""
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "voc"
    if suffix == ".json":
        return "coco"
    if suffix in (".csv", ".txt"):
        return "csv"
    head = text.lstrip()[:1]
    return "voc" if head == "<" else "coco" if head in "{[" else "csv"


def read_voc_xml(text: str, classes: Sequence[str] = VOC_CLASSES, shape: tuple[int, int] | None = None,
                 where: str = "VOC XML") -> list[Box]:
    """Boxes of a Pascal VOC annotation (module docstring).

    Raises
    ------
    InputError
        Not XML, an ``<object>`` without ``<name>`` or ``<bndbox>``, an unknown class, a bad number.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"{where} is not valid XML: {exc}") from None
    out = []
    for i, obj in enumerate(root.iter("object")):
        here = f"{where}, object {i + 1}"
        name, bb = obj.find("name"), obj.find("bndbox")
        if name is None or bb is None or name.text is None:
            raise InputError(f"{here}: needs <name> and <bndbox>")
        vals = {}
        for key in ("xmin", "ymin", "xmax", "ymax"):
            node = bb.find(key)
            if node is None:
                raise InputError(f"{here}: <bndbox> has no <{key}>")
            vals[key] = _num(node.text, f"{here} <{key}>")
        box = Box(class_id(name.text, classes, here), vals["xmin"] - 1, vals["ymin"] - 1, vals["xmax"], vals["ymax"])
        out.append(_clip(box, shape, here))
    return out


def _image_names(name: Any) -> tuple[str, str]:
    """An image's file name without its folders, and its stem: how a COCO file's images are looked up."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    return base, Path(base).stem


class CocoFile:
    """A parsed COCO annotation file: its annotations, named categories and images.

    Parameters
    ----------
    text : str
        The file's text: ``{"annotations": [...], "categories": [...], "images": [...]}`` or a
        bare list of annotations.
    where : str
        Names the file in errors.

    Raises
    ------
    InputError
        Not JSON, or no ``annotations`` list.
    """

    def __init__(self, text: str, where: str = "COCO JSON"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where} is not valid JSON: {exc}") from None
        if isinstance(data, list):
            anns, cats, images = data, [], []
        elif isinstance(data, dict) and isinstance(data.get("annotations"), list):
            anns, cats, images = data["annotations"], data.get("categories") or [], data.get("images") or []
        else:
            raise InputError(f"{where}: expected a COCO file with an 'annotations' list (or a list of annotations)")
        self.where = where
        self.annotations = anns
        self.named = {c["id"]: str(c["name"]) for c in cats if isinstance(c, dict) and "id" in c
                      and str(c.get("name") or "").strip()} if isinstance(cats, list) else {}
        # indexed once: a folder of thousands of images asks for each image's boxes in turn
        self._by_image: dict[str, list] = {}
        for a in anns:
            if isinstance(a, dict):
                self._by_image.setdefault(str(a.get("image_id")), []).append(a)
        self._ids: set[str] = set()
        self._by_name: tuple[dict[str, dict], dict[str, dict]] = ({}, {})  # base name / stem -> {id: file_name}
        for im in images if isinstance(images, list) else []:
            if isinstance(im, dict):
                self._ids.add(str(im.get("id")))
                for index, key in zip(self._by_name, _image_names(im.get("file_name", ""))):
                    index.setdefault(key, {})[str(im.get("id"))] = str(im.get("file_name"))

    def image_count(self) -> int:
        """How many images the annotations are of."""
        return len(self._by_image)

    def matching_images(self, image: str | int) -> set[str]:
        """The ``images[].id`` (as text) of ``image``: an id, or a file name.

        Export tools write ``file_name`` with folders (``images/0001.jpg``, Windows ``\\``
        separators too), so a file name matches an entry's name without its folders, and
        failing that its stem (``0001``).

        Raises
        ------
        InputError
            Two entries of that name in different folders (ambiguous).
        """
        if str(image) in self._ids:
            return {str(image)}
        for index, key in zip(self._by_name, _image_names(image)):
            found = index.get(key) if key else None
            if found:
                if len(found) > 1:
                    files = ", ".join(sorted(found.values()))
                    raise InputError(f"{self.where}: {len(found)} images are called {key!r} ({files}); "
                                     "give the image's id instead")
                return set(found)
        return set()

    def annotations_of(self, image: str | int) -> list:
        """The annotations of ``image`` (an ``images[].id`` or a file name, :meth:`matching_images`)."""
        wanted = {str(image)} | self.matching_images(image)
        return [a for i in wanted for a in self._by_image.get(i, [])]

    def boxes(self, annotations: list, classes: Sequence[str] = VOC_CLASSES,
              shape: tuple[int, int] | None = None) -> list[Box]:
        """``annotations`` (of this file) as boxes (module docstring)."""
        out = []
        for i, a in enumerate(annotations):
            here = f"{self.where}, annotation {i + 1}"
            if not isinstance(a, dict) or "bbox" not in a or "category_id" not in a:
                raise InputError(f"{here}: needs 'bbox' and 'category_id'")
            bbox = a["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise InputError(f"{here}: bbox must be [x, y, w, h], got {bbox!r}")
            x, y, w, h = (_num(v, f"{here} bbox") for v in bbox)
            cat = a["category_id"]
            if cat in self.named:
                cls = class_id(self.named[cat], classes, f"{here} (category_id {cat})")
            elif isinstance(cat, int) and not isinstance(cat, bool):
                cls = cat
            else:
                raise InputError(f"{here}: category_id {cat!r} is not a class")
            out.append(_clip(Box(cls, x, y, x + w, y + h), shape, here))
        return out


def read_coco_json(text: str, classes: Sequence[str] = VOC_CLASSES, shape: tuple[int, int] | None = None,
                   image: str | int | None = None, where: str = "COCO JSON") -> list[Box]:
    """Boxes of a COCO annotation file (module docstring).

    Parameters
    ----------
    image : str or int, optional
        With several images in the file: the ``images[].id`` or ``file_name`` whose boxes
        to read; file names match without folders or suffix (``images/a.jpg`` is ``a.jpg``
        and ``a``). A file of one image needs none.

    Raises
    ------
    InputError
        Not JSON, no annotations, several images and none chosen, a bad ``bbox``.
    """
    coco = CocoFile(text, where)
    anns = coco.annotations
    if image is not None:
        anns = coco.annotations_of(image)
        if not anns:
            raise InputError(f"{where}: no annotations of image {image!r}")
    elif coco.image_count() > 1:
        raise InputError(f"{where} holds boxes of {coco.image_count()} images; say which (image id or file name)")
    return coco.boxes(anns, classes, shape)


def read_csv_boxes(text: str, classes: Sequence[str] = VOC_CLASSES, shape: tuple[int, int] | None = None,
                   where: str = "box CSV") -> list[Box]:
    """Boxes of a ``class,x0,y0,x1,y1`` file (module docstring).

    Raises
    ------
    InputError
        A line without 5 fields, a bad number or an unknown class.
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    fields = first.split()
    if len(fields) == 5 and "," not in first and all(_is_number(f) for f in fields):
        raise InputError(f"{where} looks like YOLO boxes (class cx cy w h, normalised), which are not read: "
                         "write them as CSV class,x0,y0,x1,y1 in pixels, or as COCO JSON")
    out = []
    for here, row in csv_rows(text, ("class", "x0", "y0", "x1", "y1"), where):
        coords = [_num(f, here) for f in row[1:]]
        out.append(_clip(Box(class_id(row[0], classes, here), *coords), shape, here))
    return out


def read_boxes(path: str | os.PathLike, shape: tuple[int, int] | None = None, *, fmt: str = "auto",
               classes: Sequence[str] = VOC_CLASSES, image: str | int | None = None,
               background: int = 0, num_classes: int | None = None) -> list[Box]:
    """Read boxes from a VOC XML, COCO JSON or CSV file, checked against an image of ``shape``.

    Parameters
    ----------
    path : path-like
    shape : (H, W), optional
        The image's size: boxes are clipped (within :data:`CLIP_TOLERANCE`) and checked.
    fmt : {"auto", "voc", "coco", "csv"}
        ``auto``: by suffix (``.xml``, ``.json``, ``.csv``), else by content.
    classes : sequence of str
        Class names, index = class id (VOC's 21 by default).
    image : str or int, optional
        COCO files with several images: which one.
    background, num_classes
        As for :func:`dipseg.boxes.validate_boxes`.

    Returns
    -------
    list of Box

    Raises
    ------
    InputError
        Missing or unreadable file, a malformed file, an unknown class, a box outside the image.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"box format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    text = read_text(path, "box file")
    fmt = detect_format(path, text) if fmt == "auto" else fmt
    where = str(path)
    if fmt == "voc":
        boxes = read_voc_xml(text, classes, shape, where)
    elif fmt == "coco":
        boxes = read_coco_json(text, classes, shape, image, where)
    else:
        boxes = read_csv_boxes(text, classes, shape, where)
    if not boxes:
        raise InputError(f"{path} holds no boxes")
    if shape is not None:
        try:
            boxes = validate_boxes(boxes, shape, background=background, num_classes=num_classes)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None
    return boxes


BOX_FILE_SUFFIXES = (".xml", ".json", ".csv")
"""Per-image box files a :class:`BoxSource` folder may hold, looked for in this order."""


class BoxSource:
    """Boxes of many images: one COCO JSON of them all, or a folder of one box file per image.

    What ``dipseg serve --boxes`` opens, so that each image of a folder starts with its
    boxes (a detector's output, a data set's annotations).

    Parameters
    ----------
    path : path-like
        A COCO JSON (images found by file name, :meth:`CocoFile.matching_images`), or a folder of
        ``<image stem>.xml`` (Pascal VOC, as VOC's ``Annotations/``), ``.json`` (COCO) or
        ``.csv`` files.
    classes : sequence of str
        Class names, index = class id.

    Raises
    ------
    InputError
        The path is missing, or the COCO file is malformed (read once, here).
    """

    def __init__(self, path: str | os.PathLike, classes: Sequence[str] = VOC_CLASSES):
        self.path = Path(path)
        self.classes = tuple(classes)
        self.coco = None
        if self.path.is_dir():
            return
        if not self.path.is_file():
            raise InputError(f"box source not found: {self.path} (give a COCO JSON or a folder of box files)")
        if self.path.suffix.lower() != ".json":
            raise InputError(f"box source {self.path}: give a COCO JSON of all the images or a folder of "
                             "per-image box files (<image stem>.xml, .json or .csv)")
        self.coco = CocoFile(read_text(self.path, "box file"), str(self.path))

    def boxes_for(self, name: str, shape: tuple[int, int], *, background: int = 0,
                  num_classes: int | None = None) -> list[Box]:
        """The boxes of the image file ``name`` (``[]`` when the source has none), checked against ``shape``.

        Raises
        ------
        InputError
            The image's boxes are malformed, of unknown classes or outside the image.
        """
        if self.coco is None:
            stem = Path(name).stem
            found = next((self.path / (stem + sfx) for sfx in BOX_FILE_SUFFIXES
                          if (self.path / (stem + sfx)).is_file()), None)
            if found is None:
                return []
            return read_boxes(found, shape, classes=self.classes, background=background, num_classes=num_classes)
        anns = self.coco.annotations_of(name)
        if not anns:
            return []
        boxes = self.coco.boxes(anns, self.classes, shape)
        try:
            return validate_boxes(boxes, shape, background=background, num_classes=num_classes)
        except ValueError as exc:
            raise InputError(f"{self.path}, image {name}: {exc}") from None


def csv_boxes_text(boxes: Sequence[Box], classes: Sequence[str] | None = None) -> str:
    """Boxes as the text of a ``class,x0,y0,x1,y1`` file (class names when ``classes`` is given)."""
    lines = ["class,x0,y0,x1,y1"]
    for b in boxes:
        name = classes[b.cls] if classes is not None and b.cls < len(classes) else str(b.cls)
        lines.append(f"{name},{b.x0:g},{b.y0:g},{b.x1:g},{b.y1:g}")
    return "\n".join(lines) + "\n"


def write_csv_boxes(path: str | os.PathLike, boxes: Sequence[Box], classes: Sequence[str] | None = None) -> Path:
    """Write boxes as ``class,x0,y0,x1,y1`` (class names when ``classes`` is given)."""
    path = Path(path)
    path.write_text(csv_boxes_text(boxes, classes))
    return path


def _require_pycocotools():
    try:
        from pycocotools import mask as mask_utils
    except ImportError:  # pragma: no cover - a dependency, but say what to do if it is missing
        raise ImportError("writing COCO results needs pycocotools: pip install pycocotools") from None
    return mask_utils


def rle_encode(mask: np.ndarray) -> dict:
    """COCO RLE of a boolean ``(H, W)`` mask, ``counts`` as a str (JSON-ready)."""
    mask_utils = _require_pycocotools()
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_decode(rle: dict) -> np.ndarray:
    """The boolean ``(H, W)`` mask of a COCO RLE (``counts`` str or bytes, or uncompressed list)."""
    mask_utils = _require_pycocotools()
    r = dict(rle)
    if isinstance(r.get("counts"), list):
        r = mask_utils.frPyObjects(r, *r["size"])
    elif isinstance(r.get("counts"), str):
        r["counts"] = r["counts"].encode("ascii")
    with warnings.catch_warnings():
        # pycocotools 2.0.x's Cython decoder trips NumPy 2's __array__(copy=) deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(r).astype(bool)


def coco_annotations(classes_map: np.ndarray, boxes: Sequence[Box] | None = None, *, image_id: int = 1,
                     background: int = 0, start_id: int = 1) -> list[dict]:
    """COCO annotations of a class map: one per box (its class's pixels inside it), or one per class.

    With boxes, each box's annotation is the pixels of its class inside it, assigned to the
    smallest box where boxes of one class overlap. Without boxes, every class but the
    background is one annotation. Each has ``segmentation`` (RLE), ``area``, ``bbox``
    (``[x, y, w, h]`` of the mask), ``category_id`` (the class id), ``image_id``, ``id``
    and ``iscrowd`` 0; with boxes also ``box`` (the input box, ``[x, y, w, h]``).
    """
    classes_map = np.asarray(classes_map)
    out = []
    parts: list[tuple[int, np.ndarray, Box | None]] = []
    if boxes:
        taken = np.zeros(classes_map.shape, bool)
        for b in sorted(boxes, key=lambda b: b.area):
            r0, r1, c0, c1 = b.pixels()
            m = np.zeros(classes_map.shape, bool)
            m[r0:r1, c0:c1] = classes_map[r0:r1, c0:c1] == b.cls
            m &= ~taken
            taken |= m
            parts.append((b.cls, m, b))
    else:
        for c in np.unique(classes_map):
            if int(c) != background:
                parts.append((int(c), classes_map == c, None))
    for n, (cls, m, b) in enumerate(parts):
        ys, xs = np.nonzero(m)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)] \
            if len(ys) else [0, 0, 0, 0]
        ann = {"id": start_id + n, "image_id": image_id, "category_id": int(cls), "segmentation": rle_encode(m),
               "area": int(m.sum()), "bbox": bbox, "iscrowd": 0}
        if b is not None:
            ann["box"] = [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0]
        out.append(ann)
    return out


class CocoResults:
    """COCO results of many images, gathered one image at a time (each encoded as it comes).

    Parameters
    ----------
    class_names : sequence of str, optional
        Names of the categories (index = class id); ids alone without them.
    background : int
        The class that gets no annotation when an image has no boxes.
    """

    def __init__(self, class_names: Sequence[str] | None = None, background: int = 0):
        self.class_names = class_names
        self.background = background
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.used: set[int] = set()

    def add(self, file_name: str, classes: np.ndarray, boxes: Sequence[Box] | None = None) -> None:
        """One image's class map ``(H, W)`` and the boxes it was segmented from (:func:`coco_annotations`)."""
        cmap = np.asarray(classes)
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": str(file_name), "height": int(cmap.shape[0]),
                            "width": int(cmap.shape[1])})
        new = coco_annotations(cmap, boxes, image_id=image_id, background=self.background,
                               start_id=len(self.annotations) + 1)
        self.annotations += new
        self.used |= {a["category_id"] for a in new}

    def to_dict(self) -> dict:
        """``{"images", "annotations", "categories"}``, JSON-serialisable."""
        names = self.class_names
        cats = [{"id": c, "name": names[c] if names is not None and c < len(names) else str(c)}
                for c in sorted(self.used)]
        return {"images": self.images, "annotations": self.annotations, "categories": cats}

    def write(self, path: str | os.PathLike) -> Path:
        """Write the file (atomically: a reader never sees half of it)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()))
        os.replace(tmp, path)
        return path


def coco_results(entries: Sequence[dict], class_names: Sequence[str] | None = None, background: int = 0) -> dict:
    """A COCO file of several images' results.

    Parameters
    ----------
    entries : list of dict
        Each ``{"file_name": str, "classes": (H, W) int array, "boxes": list of Box or None}``.
    class_names : sequence of str, optional
        Names of the categories (index = class id); ids alone without them.

    Returns
    -------
    dict
        ``{"images", "annotations", "categories"}``, JSON-serialisable.
    """
    return _gathered(entries, class_names, background).to_dict()


def write_coco_results(path: str | os.PathLike, entries: Sequence[dict], class_names: Sequence[str] | None = None,
                       background: int = 0) -> Path:
    """Write :func:`coco_results` to ``path`` (an ``annotations.json``)."""
    return _gathered(entries, class_names, background).write(path)


def _gathered(entries: Sequence[dict], class_names: Sequence[str] | None, background: int) -> CocoResults:
    results = CocoResults(class_names, background)
    for e in entries:
        results.add(e["file_name"], e["classes"], e.get("boxes"))
    return results
