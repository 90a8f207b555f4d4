"""Seed 001 (Pinhasov et al. 2024): the XAI-based adversarial detector, Tables 1-4."""
