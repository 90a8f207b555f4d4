"""Seed 002: attacks on forensic autoencoders (IAP-cls, IAP-seg, data-free UAPs by over-firing) and its Tables 1-4."""
