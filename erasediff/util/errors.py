"""User-facing errors: each carries a one-line message the CLI prints before exiting non-zero."""


class ErasediffError(Exception):
    """Bad input or a refused operation; the message names the problem in one line."""


class ModelLoadError(ErasediffError):
    """A model folder is missing, incomplete or holds a checkpoint we refuse to unpickle."""


class DataError(ErasediffError):
    """A forget or retain set is empty, overlapping, or outside the model's domain."""


class DivergedError(ErasediffError):
    """A loss or gradient became non-finite; the run stops before anything is saved as final."""
