"""Exceptions that carry a one-line, user-facing message.

Entry points catch :class:`AdvdfError` and print ``error: <message>`` instead of a traceback.
"""


class AdvdfError(Exception):
    """Base class for errors caused by bad input rather than by a bug."""


class DataError(AdvdfError):
    """A data root, video, image or index file is missing, corrupt or unusable."""


class ConfigError(AdvdfError):
    """An option has an impossible value (for example eps outside [0, 1])."""


class CheckpointError(AdvdfError):
    """A checkpoint is missing or cannot be loaded safely."""


class AdversarialCheckError(AdvdfError):
    """An adversarial example left its eps-ball, the [0, 1] box, or is not finite."""
