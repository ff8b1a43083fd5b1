"""The console filter: known one-line errors lose their traceback, other errors keep it, benign notices go, and
--verbose / ERASEDIFF_DEBUG=1 leave everything in place."""

import logging
import sys

import pytest

from erasediff.util.errors import DataError
from erasediff.util.exits import DEBUG_ENV
from pipelines.console import ConsoleFilter, quiet_console


def record(
    message: str, error: BaseException | None = None, name: str = "zenml.orchestrators.local.local_orchestrator"
) -> logging.LogRecord:
    exc_info = None
    if error is not None:
        try:
            raise error
        except type(error):
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, exc_info)


def test_known_errors_lose_their_traceback_and_bugs_keep_it() -> None:
    keep = ConsoleFilter().filter
    assert not keep(record("Step curate_sets failed.", DataError("curation failed")))
    assert keep(record("Step curate_sets failed.", RuntimeError("a bug")))


@pytest.mark.parametrize(
    "message",
    [
        "Using stack: `erasediff-local-1234`",
        "  orchestrator: `default`",
        "Skipping step gate due to failure in upstream step(s): curate_sets",
        "Failed to disable MLflow autologging for the following frameworks: ['fastai'].",
    ],
)
def test_benign_lines_are_dropped(message: str) -> None:
    assert not ConsoleFilter().filter(record(message))


def test_what_the_user_needs_stays() -> None:
    keep = ConsoleFilter().filter
    for message in (
        "Step unlearn_model has started.",
        "Failed to run step curate_sets: data folder x has no labels.csv",
        "promotion: allowed",
    ):
        assert keep(record(message))
    assert not keep(
        record(
            "/x/mlflow/types/utils.py:440: UserWarning: Hint: Inferred schema contains integer column(s).",
            name="py.warnings",
        )
    )
    assert keep(record("/x/y.py:1: UserWarning: something new", name="py.warnings"))


def test_verbose_and_debug_leave_the_console_alone(monkeypatch) -> None:
    from zenml.logger import ZenMLConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]
    assert handlers

    def filtered() -> bool:
        return all(any(isinstance(f, ConsoleFilter) for f in h.filters) for h in handlers)

    def clear() -> None:
        for handler in handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, ConsoleFilter)]

    clear()
    try:
        monkeypatch.setenv(DEBUG_ENV, "1")
        quiet_console()
        assert not filtered()
        monkeypatch.delenv(DEBUG_ENV)
        quiet_console(verbose=True)
        assert not filtered()
        quiet_console()
        assert filtered()
    finally:
        clear()
