"""Group commit for the result store: the records that finish while one commit is being made go in the next.

One commit costs one fsync (milliseconds on most disks, whatever it holds), so a fsync per trajectory caps a
fast run at a few hundred trajectories per second.  `GroupWriter.put` queues a record and returns a future
that resolves once the record is durable; a single thread commits everything queued in one transaction,
then the next batch.  A record is never reported before its future resolves, so a crash loses only records
not yet reported: those queued since the last commit started (docs/store.md, "Durability").
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Protocol


class _Store(Protocol):
    def put(self, key: str, record: Mapping[str, Any]) -> None: ...
    def put_many(self, items: list[tuple[str, Mapping[str, Any]]]) -> None: ...


class GroupWriter:
    def __init__(self, store: _Store, max_batch: int = 1024) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: list[tuple[str, Mapping[str, Any], Future[None]]] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="tir-store-writer", daemon=True)
        self._thread.start()

    def put(self, key: str, record: Mapping[str, Any]) -> Future[None]:
        """Queue `record` under `key`; the future resolves when it is durable, or fails with the store's error."""
        future: Future[None] = Future()
        with self._cond:
            if self._closing:
                raise RuntimeError("GroupWriter.put after close")
            self._queue.append((key, record, future))
            self._cond.notify()
        return future

    def close(self, timeout: float | None = None) -> bool:
        """Commit what is queued, then stop; False if the writer thread did not finish within `timeout`."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._commit(batch)

    def _commit(self, batch: list[tuple[str, Mapping[str, Any], Future[None]]]) -> None:
        try:
            self._store.put_many([(key, record) for key, record, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][2].set_exception(exc)
                return
            # One bad record (or a full disk) fails the transaction: commit one by one, so that each record
            # gets its own outcome and a bad one cannot take the others down with it.
            for key, record, future in batch:
                try:
                    self._store.put(key, record)
                except Exception as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(None)
            return
        for _, _, future in batch:
            future.set_result(None)

