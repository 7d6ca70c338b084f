"""A progress bar for management commands: shown on a terminal, silent when piped."""

import sys
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(*, total: int | None, desc: str, unit: str = "line"):
    """Yield a function that advances the bar by n; nothing is drawn unless stderr is a TTY."""
    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
        unit_scale=True,
        dynamic_ncols=True,
    )
    try:
        yield bar.update
    finally:
        bar.close()
