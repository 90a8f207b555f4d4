"""The bodies of the entry points (train, attack, evaluate, transfer, curves) and what reproduce plans share."""
