"""A link of a stream run on a thread of its own, a bounded queue ahead of its consumer.

Rendering a video is a chain of generators (decode -> landmarks -> retarget -> warp -> generate ->
lay out -> encode). Run one after another they leave a core idle whenever a stage is single-threaded
(dlib, the ffmpeg pipes, laying out frames). :class:`ThreadedStage` runs the chain up to one link on its own
thread, so that link and everything after it work at once; dlib's HOG, OpenCV, torch and pipe I/O do
their heavy work outside the GIL. The queue between them is bounded (``depth`` items), so memory stays
flat however long the stream is.

Nothing is lost or left hanging: an exception raised on the thread is raised again in the consumer,
at the item where it happened (the same exception object, so an ``InputError`` stays one); a consumer
that stops early (an exception of its own, an early return) closes the link, which stops the thread
and closes its source on that thread (a decoder's ffmpeg is killed there).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


class ThreadedStage(Generic[T]):
    """Iterate ``items`` on a thread named ``name``, at most ``depth`` items ahead of the consumer.

    ``depth`` 0 hands each item over only when the consumer asks for it, and the thread takes the next
    one from ``items`` only then: a live camera's frame is fetched as late as possible, so it is not
    stale by the time it is used. Use it as a context manager (or call :meth:`close`) so that the
    thread stops when the consumer does::

        with ThreadedStage(decode_and_detect(video), depth=16, name="landmarks") as stream:
            for item in stream: ...
    """

    def __init__(self, items: Iterable[T], depth: int, name: str) -> None:
        if depth < 0:
            raise ValueError(f"depth must be 0 or more, got {depth}")
        self.depth = depth
        self._items: collections.deque[object] = collections.deque()
        self._changed = threading.Condition()
        self._stopped = False  # the consumer closed this link
        self._finished = False  # the consumer has seen the end (or closed it)
        self._thread = threading.Thread(target=self._run, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _run(self, items: Iterable[T]) -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, not lost on this thread
            self._put(_Failed(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()  # a generator's cleanup runs on the thread that ran it
                except Exception:  # noqa: BLE001 - the consumer has its own error or result already
                    logger.exception("closing the source of stage %s", self._thread.name)

    def _put(self, item: object) -> bool:
        """Hand ``item`` over, waiting for room (``depth`` 0: until it is taken); False once the consumer
        has closed this link."""
        with self._changed:
            while len(self._items) >= max(self.depth, 1) and not self._stopped:
                self._changed.wait()
            if self._stopped:
                return False
            self._items.append(item)
            self._changed.notify_all()
            while self.depth == 0 and self._items and not self._stopped:
                self._changed.wait()
            return not self._stopped

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        with self._changed:
            while not self._items:
                self._changed.wait()
            item = self._items.popleft()
            self._changed.notify_all()
        if item is _END or isinstance(item, _Failed):
            self._finished = True
            self._thread.join()
            if isinstance(item, _Failed):
                raise item.error
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the thread (after the item it is working on) and wait for it; safe to call twice."""
        with self._changed:
            self._finished = self._stopped = True
            self._changed.notify_all()
        self._thread.join()

    def __enter__(self) -> ThreadedStage[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
