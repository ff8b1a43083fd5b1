"""What a person running a request sees: the steps, the progress bars, the gate table and the outcome.

ZenML prints a preamble (user, stack components, dashboard hints), a traceback for every failed step and a
line for every skipped one; MLflow, GX and google-api-core add notices that need no action. This quiets those
on the console only: ZenML's stored step logs keep everything, and `--verbose` or ERASEDIFF_DEBUG=1 shows it
all. An error the project explains in one line (an ErasediffError) loses its traceback; any other keeps it.
"""

import logging
import os
import re
import warnings

from erasediff.util.errors import ErasediffError
from erasediff.util.exits import debugging

# Log lines that need no action, by message (ZenML's run preamble and skip notices, MLflow's first-use
# notices, ZenML's MLflow tracker on an autologging flavor this project never uses, GX's scratch folder).
BENIGN_LOGS = re.compile(
    "|".join(
        [
            r"Initiating a new run for the pipeline",
            r"Registered new pipeline",
            r"Caching is disabled by default",
            r"Using user: ",
            r"Using stack: ",
            r"  [a-z_]+: `",  # the stack's components, one line each
            r"You can visualize your pipeline runs in the",
            r"Models can be viewed in the dashboard using ZenML Pro",
            r"Skipping step .* due to",
            r"Failed to disable MLflow autologging for the following frameworks: \['fastai'\]",
            r"Created temporary directory .* for ephemeral docs site",
            r"Creating initial MLflow database tables",
            r"Updating database tables",
            # a new ZenML store, first use only
            r"Initializing the ZenML global configuration",
            r"Creating database tables",
            r"Creating default (project|stack)",
            r"Setting the global active (project|stack)",
        ]
    )
)

# Python warnings that need no action, by message (matched from the start; MLflow colours some of them).
BENIGN_WARNINGS = [
    (
        FutureWarning,
        r"You are using a Python version .* which Google will stop supporting",
    ),  # google-api-core, via MLflow
    (
        UserWarning,
        r"The specified dataset source can be interpreted in multiple ways",
    ),  # MLflow: our sources are labels, not paths
    (
        UserWarning,
        r"Hint: Inferred schema contains integer column",
    ),  # MLflow: the manifest's integer columns have no missing values
    (UserWarning, r".*Add type hints to the .*predict"),  # MLflow pyfunc: the signature is given explicitly
    (
        UserWarning,
        r".*An input example was not provided when logging the model",
    ),  # MLflow: the signature is given explicitly
]


class ConsoleFilter(logging.Filter):
    """Drops benign lines, and the traceback record of a step that failed with a one-line project error. Warnings
    reach ZenML's console as log records too (logging.captureWarnings), also those raised where a library resets
    the warning filters."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ErasediffError):
            return False  # the runner ends with that error's one `error:` line
        message = record.getMessage()
        if record.name == "py.warnings":
            return not any(
                re.search(f"{category.__name__}: {pattern}", message) for category, pattern in BENIGN_WARNINGS
            )
        return not BENIGN_LOGS.match(message)


def quiet_console(verbose: bool = False) -> None:
    """Install the filters on ZenML's and MLflow's console handlers, and the warning filters (once ZenML is
    imported)."""
    if verbose or debugging():
        return
    for category, message in BENIGN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar for a download of a few small files
    import mlflow  # noqa: F401 - sets up the "mlflow" logger's handler, which gets the filter too
    from zenml.logger import ZenMLConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)] + logging.getLogger(
        "mlflow"
    ).handlers
    for handler in handlers:
        if not any(isinstance(f, ConsoleFilter) for f in handler.filters):
            handler.addFilter(ConsoleFilter())
