"""Small shared helpers: atomic files, config digests, W&B set-up, entry-point wrapper."""
