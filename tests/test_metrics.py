"""Seed 001's frame-level (F2F) and video-level (Vid) accuracy."""

import torch

from advdf.metrics import detection_report, video_votes


def test_majority_vote_per_video():
    pred = torch.tensor([1, 1, 0, 0, 0, 1, 1, 0])
    label = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0])
    video = torch.tensor([7, 7, 7, 3, 3, 3, 9, 9])
    vp, vl = video_votes(pred, label, video)
    # video 3: 1 of 3 fake -> real; video 7: 2 of 3 -> fake; video 9: 1 of 2 is not a majority -> real
    assert vp.tolist() == [0, 1, 0] and vl.tolist() == [0, 1, 0]


def test_report_overall_and_per_class():
    pred = torch.tensor([1, 0, 0, 0])
    label = torch.tensor([1, 1, 0, 0])
    video = torch.tensor([0, 0, 1, 1])
    r = detection_report(pred, label, video)
    assert r["f2f"] == 0.75
    assert r["f2f_fake"] == 0.5 and r["f2f_real"] == 1.0
    assert r["vid"] == 0.5  # the fake video has 1 of 2 frames fake: no majority
