"""Reference cycles holding Qt objects are freed in the GUI thread, never in a busy worker."""

from __future__ import annotations

import gc
import threading
from typing import ClassVar

from PySide6.QtCore import QObject

from desktop.gc_guard import GuiCollector


class _Holder:
    """Half of a cycle with a QObject; says in which thread it was freed."""

    freed_in: ClassVar[list[int]] = []

    def __del__(self) -> None:
        _Holder.freed_in.append(threading.get_ident())


def _drop_a_cycle() -> None:
    holder, obj = _Holder(), QObject()
    holder.obj, obj.holder = obj, holder  # unreachable once this returns: only gc frees it


def _allocate_cycles() -> None:
    for _ in range(50_000):  # far past every threshold of Python's collector
        cycle: list = []
        cycle.append(cycle)


def test_a_busy_worker_collects_nothing_and_the_gui_thread_frees_the_cycle(qtbot):
    collector = GuiCollector(interval_ms=20)
    collector.start()
    _Holder.freed_in = []
    try:
        _drop_a_cycle()
        worker = threading.Thread(target=_allocate_cycles)
        worker.start()
        worker.join()
        assert _Holder.freed_in == []  # Python's own collection would have run in the worker
        qtbot.waitUntil(lambda: bool(_Holder.freed_in), timeout=5000)
        assert _Holder.freed_in == [threading.get_ident()]
    finally:
        collector.stop()


def test_stop_collects_now_and_gives_collection_back(qtbot):
    gc.enable()
    collector = GuiCollector(interval_ms=60_000)  # no tick during the test
    collector.start()
    assert not gc.isenabled() and collector.active
    _Holder.freed_in = []
    _drop_a_cycle()
    collector.stop()
    assert _Holder.freed_in == [threading.get_ident()]
    assert gc.isenabled() and not collector.active
    gc.disable()  # as the autouse fixture left it for the rest of the test


def test_a_library_switching_collection_back_on_is_switched_off_at_the_next_tick(qtbot):
    collector = GuiCollector(interval_ms=20)
    collector.start()
    try:
        gc.enable()  # as a library that disables and enables it around its own work
        qtbot.waitUntil(lambda: not gc.isenabled(), timeout=5000)
    finally:
        collector.stop()
    gc.disable()  # as the autouse fixture left it for the rest of the test
