"""Logging for workflow steps: a log file per job, and bad input reported in one line."""

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecg2abp.errors import InputError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(log_file: Path | str | None = None, level: int = logging.INFO) -> None:
    """Send the package's log lines to stderr and, if given, to `log_file`."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)


def run_step(log_file: Path | str | None, step: Callable[..., Any], *args: Any, **kwargs: Any):
    """Run one workflow step with logging; bad input ends it with one line, no traceback; any
    other failure's traceback goes to the log file too (where a cluster user looks first)."""
    configure(log_file)
    try:
        return step(*args, **kwargs)
    except InputError as err:
        message = f"ecg2abp: error: {err}"
        if log_file is not None:
            with Path(log_file).open("a") as handle:
                handle.write(message + "\n")
        sys.exit(message)
    except Exception:
        logging.getLogger("ecg2abp").exception("%s failed", getattr(step, "__name__", "step"))
        sys.exit(1)
