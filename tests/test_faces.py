"""The face detectors behind ``data.face_detector``: each finds a real face where it is, none on a blank frame, and
has an identity of its own (prepared sets made with different detectors never mix)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import skimage.data

from advdf.data import faces
from advdf.data.faces import FACE_DETECTORS, box_iou, clipped, create_face_detector, largest_face
from advdf.data.source import data_identity
from advdf.errors import DataError

ASTRONAUT_FACE = (177, 66, 95, 95)  # x, y, w, h of the face in skimage's astronaut (the synthetic faces' source)


@pytest.mark.parametrize("name", sorted(FACE_DETECTORS))
def test_each_detector_finds_the_face_where_it_is_and_none_on_a_blank_frame(name):
    detector = create_face_detector(name)
    image = skimage.data.astronaut()
    boxes = detector.detect(image)
    assert all(isinstance(v, int) for b in boxes for v in b)
    # the face is found (the largest box among those that overlap it; dlib also boxes the patch on the suit)
    best = max(boxes, key=lambda b: box_iou(b, ASTRONAUT_FACE))
    assert box_iou(best, ASTRONAUT_FACE) > 0.4, boxes
    h, w = image.shape[:2]
    assert all(0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 0 and bh > 0 for x, y, bw, bh in boxes)
    assert detector.detect(np.full((128, 128, 3), 128, np.uint8)) == []
    assert largest_face(detector.detect(np.full((128, 128, 3), 128, np.uint8))) is None


def test_the_detector_is_part_of_the_prepared_sets_identity():
    ids = {name: data_identity("unused", {"num_videos": 8}, "c23", ["Deepfakes"], 4, 2, 32, face_detector=name)
           for name in FACE_DETECTORS}
    assert len({str(i) for i in ids.values()}) == len(FACE_DETECTORS)
    assert ids["dlib"]["face_detector"] == {"name": "DlibFaceDetector", "upsample": 1}


def test_a_missing_package_is_one_clear_error(monkeypatch):
    real = importlib.import_module

    def no_dlib(name, *args):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real(name, *args)

    monkeypatch.setattr(faces.importlib, "import_module", no_dlib)
    with pytest.raises(DataError, match=r"face detector 'dlib' needs the dlib-bin package .*\.\[faces\]"):
        create_face_detector("dlib")


def test_boxes_past_the_border_are_clipped_to_the_frame():
    assert clipped([(-5, 10, 20, 30), (90, 90, 130, 120), (100, 5, 140, 9), (3, 4, 3, 9)], 100, 100) == [
        (0, 10, 20, 20), (90, 90, 10, 10)]
