"""Seed 000 (Jin et al. 2025): nine detectors x white-box attacks x defenses, Tables 1 and 2."""
