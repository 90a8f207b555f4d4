"""Subjective tests of adversarial images: seed 002's degradation category rating (DCR) as a tool.

``study`` builds a study from cached adversarial sets (pairs, lossless images, balanced sets, attention checks),
``server`` serves it to anonymous evaluators (ratings in SQLite: ``db``, ``session``), ``report`` turns the ratings
into MOS with Student-t intervals after attention and BT.500 screening (``screening``), in seed 002's Table 5
layout beside PSNR and SSIM. ``assess.py`` (``job``) is the command line.
"""
