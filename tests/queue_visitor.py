"""A visitor speaking Gradio's queue protocol over HTTP as the browser does, for what gradio_client cannot:
the Live tab's events (private: not in the API) and a webcam stream (frames sent one by one into one
running event). Used by tests/test_app_load.py and benchmarks/bench_load.py, against 127.0.0.1 only.

The protocol (Gradio 6): ``POST gradio_api/queue/join`` starts an event of a session and answers its id;
``GET gradio_api/queue/data?session_hash=`` streams the session's messages (server-sent events); a
streaming event takes its next inputs from ``POST gradio_api/stream/{event_id}``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Event:
    """One event's messages as they come: outputs of a stream, then its end."""

    event_id: str
    outputs: list[tuple[float, list]] = field(default_factory=list)  # (time.monotonic(), output data)
    started: float | None = None  # when the server began processing it (left the queue)
    progress: list[str] = field(default_factory=list)  # what gr.Progress said, in order
    ended: float | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class QueueVisitor:
    """One browser tab: its own session, its events, one reader of its messages."""

    def __init__(self, url: str) -> None:
        self.url, self.session_hash = url, uuid.uuid4().hex
        self.http = httpx.Client(timeout=30)
        self.config = self.http.get(url + "config").json()
        self.events: dict[str, Event] = {}
        self._fn: dict[str, tuple[int, int]] = {}  # event id -> (fn_index, trigger id)
        self._reader: threading.Thread | None = None
        self._closed = False

    def close(self) -> None:
        """Leave: stop reading (the server sees the connection go) and close the connection pool."""
        self._closed = True
        self.http.close()

    # -- finding an event by its trigger's elem_id ---------------------------------------------------------
    def _trigger(self, elem_id: str, event: str) -> tuple[int, int]:
        ids = [c["id"] for c in self.config["components"] if c.get("props", {}).get("elem_id") == elem_id]
        for index, dependency in enumerate(self.config["dependencies"]):
            for target, name in dependency["targets"]:
                if target in ids and name == event:
                    return dependency.get("id", index), target
        raise LookupError(f"no {event} event on #{elem_id}")

    def upload(self, path: Path) -> dict[str, Any]:
        """``path`` uploaded as the browser does: the file input's value for it."""
        with path.open("rb") as file:
            response = self.http.post(self.url + "gradio_api/upload", files={"files": (path.name, file)})
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    # -- events -----------------------------------------------------------------------------------------
    def submit(self, elem_id: str, event: str, data: list) -> Event:
        fn_index, trigger = self._trigger(elem_id, event)
        response = self.http.post(self.url + "gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "trigger_id": trigger, "session_hash": self.session_hash,
            "event_data": None})
        response.raise_for_status()
        found = self.events[response.json()["event_id"]] = Event(response.json()["event_id"])
        self._fn[found.event_id] = (fn_index, trigger)
        if self._reader is None or not self._reader.is_alive():
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return found

    def call(self, elem_id: str, event: str, data: list, timeout: float = 120) -> list:
        """Run one event to its end: its output data, or RuntimeError with the server's message."""
        done = self.submit(elem_id, event, data)
        if not done.done.wait(timeout):
            raise TimeoutError(f"#{elem_id} {event} did not finish in {timeout} s")
        if done.error is not None:
            raise RuntimeError(done.error)
        return done.outputs[-1][1]

    def send(self, event: Event, data: list) -> int:
        """The next inputs of a running stream: the HTTP status (404 once the server has ended it)."""
        fn_index, trigger = self._fn[event.event_id]
        return self.http.post(self.url + f"gradio_api/stream/{event.event_id}", json={
            "data": data, "fn_index": fn_index, "trigger_id": trigger, "session_hash": self.session_hash,
            "event_data": None}).status_code

    def _read(self) -> None:
        try:
            with self.http.stream("GET", self.url + "gradio_api/queue/data",
                                  params={"session_hash": self.session_hash}, timeout=None) as response:
                for line in response.iter_lines():
                    if self._closed:
                        return
                    if line.startswith("data:"):
                        self._handle(json.loads(line[5:]))
        except httpx.HTTPError:
            return

    def _handle(self, message: dict[str, Any]) -> None:
        event = self.events.get(message.get("event_id", ""))
        if event is None:
            return
        now = time.monotonic()
        kind = message.get("msg")
        if kind == "process_starts":
            event.started = now
        elif kind == "progress":
            event.progress += [str(unit.get("desc")) for unit in message.get("progress_data") or []]
        elif kind in ("process_generating", "process_streaming") and message.get("success", True):
            event.outputs.append((now, message["output"].get("data", [])))
        elif kind == "process_completed":
            if message.get("success"):
                event.outputs.append((now, message["output"].get("data", [])))
            else:
                event.error = str(message["output"].get("error"))
            event.ended = now
            event.done.set()


def image_payload(path: Path) -> dict[str, Any]:
    """A webcam frame as the browser sends it: the picture as a data URL."""
    encoded = base64.b64encode(path.read_bytes()).decode()
    return {"url": f"data:image/jpeg;base64,{encoded}", "meta": {"_type": "gradio.FileData"}}
