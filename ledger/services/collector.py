"""Pausing Python's cyclic garbage collector around bulk work (the batch path, the sheet import)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one bulk call. A batch or an import keeps some ten
    to some tens of container objects per transfer or row alive until it ends, none in a reference
    cycle, so each collection it triggered would walk them (and the rest of the heap) for nothing:
    about a tenth of a 10,000-transfer batch. Paused process-wide, for the length of the call;
    resumed unless someone else had paused it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
