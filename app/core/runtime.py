"""Process-wide settings of the interpreter, applied once by every Coverwatch process as it starts (the CLI, each
web worker)."""

from __future__ import annotations

import gc
import sys

# (youngest generation, middle, oldest): CPython's default is (700, 10, 10).
GC_THRESHOLD = (10_000, 10, 10)
# Seconds a thread holding the GIL runs before one waiting for it gets it: CPython's default is 0.005.
SWITCH_INTERVAL = 0.0005
_tuned = False


def tune_interpreter() -> None:
    """Set CPython's GIL switch interval and its cyclic garbage collector.

    A web worker serves a dashboard's read while one of its threads writes a batch, in Python, holding the GIL: the
    read waits for the GIL at each of its steps (each hop between the event loop and a worker thread, each answer of
    the database), up to the switch interval each time. With CPython's 5 ms a read of one buyer's exposure took
    100-220 ms at p99 during a 5,000-invoice batch in the same worker (`bench/RESULTS.md`); with 0.5 ms, 35-67 ms.
    A thread alone never switches, so a batch by itself runs as fast.

    The garbage collector, for a service that builds thousands of short-lived objects per batch: with the default
    thresholds the youngest generation was collected every 700 allocations, each collection scanning again the
    batch's rows and models still alive: a 1,000,000-row import spent about 12 s of its 64 s of Python CPU in the
    collector (py-spy counts it in whichever frame allocated: a list comprehension building tuples took 3 us an
    item). The objects alive at start-up (modules, classes, settings) are moved out of the collector's sight
    (`gc.freeze`), and the youngest generation is collected every 10,000 allocations. Cycles are still found, a
    little later, at some memory (the 1,000,000-row import's peak RSS: 122 MB -> 145 MB)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
