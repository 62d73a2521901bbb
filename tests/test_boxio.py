"""dipseg.boxio: VOC XML, COCO JSON and CSV boxes in; COCO RLE results out (round trips)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dipseg.boxes import Box
from dipseg.boxio import (coco_annotations, coco_results, read_boxes, rle_decode, rle_encode, write_coco_results,
                          write_csv_boxes)
from dipseg.io import InputError

VOC_XML = """<annotation>
  <folder>VOC2012</folder><filename>2007_000032.jpg</filename>
  <size><width>50</width><height>40</height><depth>3</depth></size>
  <object><name>aeroplane</name><pose>Frontal</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object>
  <object><name>person</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>50.4</xmax><ymax>40</ymax></bndbox></object>
</annotation>"""


def test_voc_xml(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(VOC_XML)
    boxes = read_boxes(p, (40, 50))
    # 1-based inclusive -> pixel edges; 50.4 is within the clip tolerance of the 50 px wide image
    assert boxes == [Box(1, 10, 5, 30, 25), Box(15, 0, 0, 50, 40)]


def test_coco_json_by_name_and_by_id(tmp_path):
    data = {"images": [{"id": 7, "file_name": "x.jpg", "width": 50, "height": 40},
                       {"id": 8, "file_name": "y.jpg", "width": 50, "height": 40}],
            "categories": [{"id": 18, "name": "dog"}, {"id": 99, "name": "zebra"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 18, "bbox": [2.5, 3, 10, 20]},
                            {"id": 2, "image_id": 8, "category_id": 99, "bbox": [0, 0, 5, 5]}]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(data))
    assert read_boxes(p, (40, 50), image="x.jpg") == [Box(12, 2.5, 3, 12.5, 23)]
    # a named category is its name's class, never its id (99 is no VOC class, and a zebra neither)
    with pytest.raises(InputError, match=r"category_id 99.*unknown class 'zebra'"):
        read_boxes(p, (40, 50), image=8)
    assert read_boxes(p, (40, 50), image=8, classes=["background"] + ["x"] * 20 + ["zebra"]) == \
        [Box(21, 0, 0, 5, 5)]
    with pytest.raises(InputError, match="2 images"):
        read_boxes(p, (40, 50))
    bare = tmp_path / "bare.json"  # categories not named: the ids are class ids
    bare.write_text(json.dumps([{"bbox": [1, 1, 3, 3], "category_id": 3}]))
    assert read_boxes(bare, (40, 50)) == [Box(3, 1, 1, 4, 4)]
    with pytest.raises(InputError, match="not a class"):
        bare.write_text(json.dumps([{"bbox": [1, 1, 3, 3], "category_id": 99}]))
        read_boxes(bare, (40, 50), num_classes=21)


def test_coco_names_of_voc_classes_are_not_read_as_ids(tmp_path):
    # COCO's own ids and names (5 airplane, 4 motorcycle, 63 couch, 72 tv, 67 dining table):
    # by id they would be a bottle, a boat and nothing at all
    cats = [{"id": 5, "name": "airplane"}, {"id": 4, "name": "motorcycle"}, {"id": 63, "name": "couch"},
            {"id": 72, "name": "tv"}, {"id": 67, "name": "dining table"}, {"id": 64, "name": "potted plant"}]
    anns = [{"image_id": 1, "category_id": c["id"], "bbox": [i, i, 5, 5]} for i, c in enumerate(cats)]
    p = tmp_path / "coco.json"
    p.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "categories": cats, "annotations": anns}))
    assert [b.cls for b in read_boxes(p, (40, 50))] == [1, 14, 18, 20, 11, 16]


def test_class_names_ignore_case_spaces_and_underscores(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(VOC_XML.replace("<name>aeroplane</name>", "<name> Potted_Plant </name>")
                 .replace("<name>person</name>", "<name>Dining Table</name>"))
    assert [b.cls for b in read_boxes(p, (40, 50))] == [16, 11]
    c = tmp_path / "b.csv"
    c.write_text("TV-Monitor,1,1,5,5\nAirplane,1,1,5,5\n")
    assert [b.cls for b in read_boxes(c, (40, 50))] == [20, 1]
    # the aliases are VOC's: with other classes a name must be one of them
    with pytest.raises(InputError, match="unknown class 'Airplane'"):
        read_boxes(c, (40, 50), classes=["background", "tv monitor", "plane"])


def test_csv_with_names_ids_and_header(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("class,x0,y0,x1,y1\ncat,1,2,10,12\n# a comment\n12,0,0,5.5,4\n")
    boxes = read_boxes(p, (40, 50))
    assert boxes == [Box(8, 1, 2, 10, 12), Box(12, 0, 0, 5.5, 4)]
    out = write_csv_boxes(tmp_path / "w.csv", boxes, ["bg"] * 8 + ["cat", "x", "y", "z", "dog"])
    assert read_boxes(out, (40, 50)) == boxes


@pytest.mark.parametrize("text, suffix, message", [
    ("<annotation><object><name>cat</name></object></annotation>", ".xml", "needs <name> and <bndbox>"),
    ("<annotation>", ".xml", "not valid XML"),
    ("<annotation><object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax>"
     "</bndbox></object></annotation>", ".xml", "unknown class"),
    ("{", ".json", "not valid JSON"),
    ('{"annotations": [{"bbox": [1, 2], "category_id": 1}]}', ".json", r"\[x, y, w, h\]"),
    ("cat,1,2,3\n", ".csv", "5 fields"),
    ("cat,1,2,3,x\n", ".csv", "not a number"),
    ("cat,1,2,80,10\n", ".csv", "outside"),
    ("cat,5,2,3,10\n", ".csv", "empty or inverted"),
    ("background,1,1,3,3\n", ".csv", "background"),
    ("", ".csv", "no boxes"),
    ("0 0.5 0.5 0.2 0.3\n", ".txt", "looks like YOLO boxes.*class,x0,y0,x1,y1"),
])
def test_bad_files(tmp_path, text, suffix, message):
    p = tmp_path / f"bad{suffix}"
    p.write_text(text)
    with pytest.raises(InputError, match=message):
        read_boxes(p, (40, 50))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_boxes(tmp_path / "nope.xml", (4, 4))


def test_rle_round_trip_and_coco_results(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.random((13, 17)) > 0.5
    assert np.array_equal(rle_decode(rle_encode(mask)), mask)
    classes = np.zeros((20, 30), np.int64)
    classes[2:8, 3:9] = 1
    classes[5:15, 6:20] = 2  # overlaps class 1's box
    boxes = [Box(1, 2, 1, 10, 9), Box(2, 5, 4, 21, 16)]
    anns = coco_annotations(classes, boxes)
    assert [a["category_id"] for a in anns] == [1, 2]
    a1 = next(a for a in anns if a["category_id"] == 1)
    assert np.array_equal(rle_decode(a1["segmentation"]), classes == 1)
    assert a1["bbox"] == [3, 2, 6, 6] and a1["area"] == int((classes == 1).sum())
    path = write_coco_results(tmp_path / "annotations.json", [{"file_name": "i.png", "classes": classes,
                                                               "boxes": boxes}], ["bg", "plane", "bike"])
    data = json.loads(path.read_text())
    assert data["categories"] == [{"id": 1, "name": "plane"}, {"id": 2, "name": "bike"}]
    # pycocotools reads it back, and its boxes come back as our boxes
    from pycocotools.coco import COCO

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    m = coco.annToMask(coco.loadAnns(coco.getAnnIds(imgIds=[1], catIds=[2]))[0])
    assert np.array_equal(m.astype(bool), classes == 2)
    assert read_boxes(path, (20, 30), fmt="coco", classes=["bg", "plane", "bike"])[0].cls in (1, 2)
    plain = coco_results([{"file_name": "j.png", "classes": classes}])
    assert sorted(a["category_id"] for a in plain["annotations"]) == [1, 2]


def test_coco_file_names_with_folders(tmp_path):
    # export tools (Label Studio, CVAT, Roboflow) write file_name with folders and separators of their OS
    data = {"images": [{"id": 1, "file_name": "images/2007_000032.jpg"},
                       {"id": 2, "file_name": "C:\\data\\2007_000033.jpg"},
                       {"id": 3, "file_name": "train/dup.jpg"}, {"id": 4, "file_name": "val/dup.jpg"},
                       {"id": 5, "file_name": "frames/0005.png"}],
            "categories": [{"id": 1, "name": "dog"}],
            "annotations": [{"image_id": i, "category_id": 1, "bbox": [i, 1, 3, 3]} for i in (1, 2, 3, 4, 5)]}
    p = tmp_path / "export.json"
    p.write_text(json.dumps(data))
    assert read_boxes(p, (40, 50), image="2007_000032.jpg") == [Box(12, 1, 1, 4, 4)]
    assert read_boxes(p, (40, 50), image="2007_000033.jpg") == [Box(12, 2, 1, 5, 4)]
    # the same stem with another suffix (an image converted after export) is still found
    assert read_boxes(p, (40, 50), image="0005.jpg") == [Box(12, 5, 1, 8, 4)]
    assert read_boxes(p, (40, 50), image=4) == [Box(12, 4, 1, 7, 4)]
    with pytest.raises(InputError, match=r"2 images are called 'dup.jpg'.*give the image's id"):
        read_boxes(p, (40, 50), image="dup.jpg")
    with pytest.raises(InputError, match="no annotations of image 'other.jpg'"):
        read_boxes(p, (40, 50), image="other.jpg")


def test_box_source_of_a_folder_of_images(tmp_path):
    from dipseg.boxio import BoxSource

    coco = tmp_path / "all.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "images/a.jpg"}],
                                "categories": [{"id": 5, "name": "cat"}],
                                "annotations": [{"image_id": 1, "category_id": 5, "bbox": [1, 2, 10, 10]}]}))
    src = BoxSource(coco)
    assert src.boxes_for("a.jpg", (40, 50)) == [Box(8, 1, 2, 11, 12)]
    assert src.boxes_for("b.jpg", (40, 50)) == []  # an image without boxes is no error
    with pytest.raises(InputError, match="outside"):
        src.boxes_for("a.jpg", (8, 8))

    folder = tmp_path / "ann"
    folder.mkdir()
    (folder / "a.xml").write_text(VOC_XML)
    (folder / "b.csv").write_text("dog,0,0,5,5\n")
    src = BoxSource(folder)
    assert src.boxes_for("a.png", (40, 50)) == [Box(1, 10, 5, 30, 25), Box(15, 0, 0, 50, 40)]
    assert src.boxes_for("b.jpg", (40, 50)) == [Box(12, 0, 0, 5, 5)]
    assert src.boxes_for("c.jpg", (40, 50)) == []
    with pytest.raises(InputError, match="not found"):
        BoxSource(tmp_path / "missing")
