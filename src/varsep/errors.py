"""Exceptions with messages meant for users.

The CLI prints these without a traceback: each message says what was wrong, where, and what to do.
"""


class VarsepError(Exception):
    """Base class of the errors the CLI reports as plain messages."""


class ConfigError(VarsepError, ValueError):
    """A setting is unknown, mistyped or out of range."""


class DataError(VarsepError):
    """A data file or folder is missing, corrupt, or holds values the model cannot use."""


class CheckpointError(VarsepError):
    """A checkpoint cannot be read safely or does not match the model it is loaded into."""


class TrainingError(VarsepError):
    """Training cannot go on (for example, a loss became NaN)."""


class Interrupted(Exception):
    """Training stopped on a signal (SIGINT: Ctrl-C, SIGTERM: a scheduler or ``kill``) after saving
    ``last.ckpt``; the message says how to continue. The CLI exits with 128 + the signal's number (130 for
    SIGINT, 143 for SIGTERM), as shells do for a process a signal ended, so ``fit && evaluate`` stops."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
