"""Every cache advdf keeps: adversarial sets (sharded), evaluated cells; atomic writes, keys and locks."""
