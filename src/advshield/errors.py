"""User-facing errors: the CLI prints them as one line, without a traceback."""


class AdvShieldError(Exception):
    """Base class of every error advshield raises on purpose."""


class DataError(AdvShieldError):
    """A dataset is missing, truncated, corrupted or inconsistent."""


class CheckpointError(AdvShieldError):
    """A checkpoint or its card is missing, corrupted or does not fit its architecture."""


class InputError(AdvShieldError, ValueError):
    """A tensor or parameter given to a public function is invalid."""


class StorageError(AdvShieldError, OSError):
    """A result could not be written (full disk, read-only folder); nothing half-written is left behind.

    Also an :class:`OSError` (with ``errno`` set), so callers that tolerate a failed write still catch it.
    """

    def __init__(self, errno: int, message: str):
        super().__init__(errno, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ClassMismatchError(DataError, InputError):
    """A dataset's classes differ from another split's or from a model's: labels would be renumbered."""
