"""Seed 004 (Liao et al. 2021): the Key Region Attack, Tables 1-2."""
