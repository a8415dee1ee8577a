"""User-facing errors: the CLI prints them as one line, without a traceback."""


class AdvShieldError(Exception):
    """Base class of every error advshield raises on purpose."""


class DataError(AdvShieldError):
    """A dataset is missing, truncated, corrupted or inconsistent."""


class CheckpointError(AdvShieldError):
    """A checkpoint or its card is missing, corrupted or does not fit its architecture."""


class InputError(AdvShieldError, ValueError):
    """A tensor or parameter given to a public function is invalid."""
