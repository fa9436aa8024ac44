"""The served app under load (issue 29): N visitors generating at once, with and without a live stream.

    python benchmarks/bench_load.py [--weights checkpoints] [--visitors 1 2 4 8] [--steps 0] [--live both]
                                    [--sessions 50]

``python app.py`` is started in a process of its own on 127.0.0.1 (loopback only; nothing else is
reached) with ``--weights`` and the app's default settings (one job at a time, live slots sized to the
CPU). For each row, N visitors (gradio_client, one client each) press *Generate* at once on the
example (the astronaut and examples/driver.mp4, ``--steps`` fine-tuning steps; 0 visitors: the stream alone
for 15 s); with a live stream, one
more visitor streams examples/driver.mp4's frames into the Live tab (example avatar, *Start*) every
``TALKING_HEAD_LIVE_STREAM_EVERY`` seconds meanwhile, as the browser does (tests/queue_visitor.py).

Per row: median and p95 **time to result** (from pressing Generate to the result, queue included), the
live stream's **frames/s** back while the jobs ran, and the server's **peak memory** (resident, sampled
every 0.2 s during the row). Then ``--sessions`` Live visitors press *Start* and leave: the server's memory
before, with them, and once their sessions expired (the server runs with ``TALKING_HEAD_LIVE_SESSION_TTL``
= ``SESSION_SECONDS``). Bounded: at most 16 visitors a row, every job and stream under
``--timeout``. Print the load average: on a shared machine compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Self

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # app_support and queue_visitor: the app tests' helpers

from app_support import ASTRONAUT, EXAMPLES, served_app_py
from gradio_client import Client, handle_file
from queue_visitor import QueueVisitor

from talking_head.finetune import FinetuneConfig

DRIVER = EXAMPLES / "driver.mp4"
MAX_VISITORS = 16
SESSION_SECONDS = 15  # the benchmark server's live-session expiry
ALONE_SECONDS = 15  # how long a row of 0 visitors measures the live stream alone


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


class PeakMemory:
    """The most resident memory of ``pid`` seen while in the ``with`` block (sampled every 0.2 s)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> Self:
        def sample() -> None:
            while not self._stop.wait(0.2):
                self.peak = max(self.peak, resident_mb(self.pid))

        self.peak = resident_mb(self.pid)
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def driver_frames(limit: int = 100) -> list[dict]:
    """examples/driver.mp4's frames as the browser streams a webcam: JPEG data URLs."""
    video, frames = cv2.VideoCapture(str(DRIVER)), []
    while len(frames) < limit:
        ok, frame = video.read()
        if not ok:
            break
        encoded = base64.b64encode(cv2.imencode(".jpg", frame)[1].tobytes()).decode()
        frames.append({"url": f"data:image/jpeg;base64,{encoded}", "meta": {"_type": "gradio.FileData"}})
    return frames


class LiveStream:
    """One Live visitor streaming the driver's frames every ``every`` seconds until stopped."""

    def __init__(self, url: str, every: float) -> None:
        self.tab, self.every, self.frames = QueueVisitor(url), every, driver_frames()
        avatar = self.tab.call("live-example", "click", [])[0]
        self.tab.call("live-start", "click", [avatar])
        self._stop = threading.Event()

    def __enter__(self) -> Self:
        self.event = self.tab.submit("live-camera", "stream", [self.frames[0], None])
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()
        return self

    def _send(self) -> None:
        index = 0
        while not self._stop.wait(self.every) and not self.event.done.is_set():
            index = (index + 1) % len(self.frames)
            self.tab.send(self.event, [self.frames[index], None])

    def frames_per_second(self, began: float, ended: float) -> float:
        return sum(began <= at <= ended for at, _ in self.event.outputs) / (ended - began)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.tab.http.post(self.tab.url + f"gradio_api/stream/{self.event.event_id}/close")
        self.tab.close()


def generate_at_once(clients: list[Client], steps: int, timeout: float) -> list[float]:
    """Each client presses Generate at the same moment: seconds each waited for its result (no clients: none,
    after ``ALONE_SECONDS``, the live stream's row alone)."""
    if not clients:
        time.sleep(ALONE_SECONDS)
        return []

    def visit(client: Client) -> float:
        began = time.monotonic()
        client.submit([handle_file(ASTRONAUT)], handle_file(DRIVER), steps, api_name="/generate").result(timeout)
        return time.monotonic() - began

    with ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(visit, clients))


def abandoned_sessions(url: str, pid: int, count: int) -> str:
    """``count`` visitors start a live session and leave: the server's memory before, with them, after expiry."""
    avatar = QueueVisitor(url).call("live-example", "click", [])[0]
    time.sleep(SESSION_SECONDS + 3)  # earlier sessions (the rows' streams) gone first
    idle = resident_mb(pid)

    def start(_: int) -> None:
        tab = QueueVisitor(url)
        tab.call("live-start", "click", [avatar])
        tab.close()

    began = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(start, range(count)))
    started, took = resident_mb(pid), time.monotonic() - began
    time.sleep(SESSION_SECONDS + 5)
    return (f"{count} live sessions started (in {took:.0f} s) and abandoned: server memory {idle:.0f} MB before, "
            f"{started:.0f} MB with them, {resident_mb(pid):.0f} MB {SESSION_SECONDS + 5} s later "
            f"(expiry {SESSION_SECONDS} s)")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "checkpoints"))
    parser.add_argument("--visitors", type=int, nargs="+", default=[1, 2, 4, 8],
                        help="visitors generating at once, a row each (0: the live stream alone)")
    parser.add_argument("--steps", type=int, default=FinetuneConfig().steps, help="fine-tuning steps of each generate")
    parser.add_argument("--live", choices=["both", "with", "without"], default="both")
    parser.add_argument("--timeout", type=float, default=600, help="seconds any one job may take")
    parser.add_argument("--sessions", type=int, default=50, help="abandoned live sessions (0: none)")
    args = parser.parse_args()
    if not all(0 <= n <= MAX_VISITORS for n in args.visitors) or not 0 <= args.sessions <= 100:
        parser.error(f"--visitors: 0 (the live stream alone) to {MAX_VISITORS}; --sessions: 0 to 100")
    every = float(os.environ.get("TALKING_HEAD_LIVE_STREAM_EVERY", "0.05"))
    lives = {"both": [False, True], "with": [True], "without": [False]}[args.live]
    with tempfile.TemporaryDirectory() as folder:
        env = {"TALKING_HEAD_CHECKPOINTS": str(Path(args.weights).resolve()), "TMPDIR": folder,
               "GRADIO_TEMP_DIR": str(Path(folder) / "gradio"), "TALKING_HEAD_LIVE_SESSION_TTL": str(SESSION_SECONDS)}
        with served_app_py(Path(folder), env) as (url, pid):
            print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average at start "
                  f"{os.getloadavg()[0]:.1f}; server idle at {resident_mb(pid):.0f} MB; {args.steps} fine-tuning "
                  f"steps; a live frame sent every {every:g} s\n")
            print("| live stream | visitors | median time to result (s) | p95 (s) | live frames/s | peak memory (MB) |")
            print("|---|---|---|---|---|---|")
            for live in lives:
                for n in args.visitors:
                    clients = [Client(url, verbose=False, download_files=str(Path(folder) / f"v{i}"))
                               for i in range(n)]
                    with PeakMemory(pid) as memory, (LiveStream(url, every) if live else nullcontext()) as stream:
                        began = time.monotonic()
                        waits = generate_at_once(clients, args.steps, args.timeout)
                        rate = f"{stream.frames_per_second(began, time.monotonic()):.1f}" if stream else "-"
                    for client in clients:
                        client.close()
                    times = f"{statistics.median(waits):.1f} | {p95(waits):.1f}" if waits else "- | -"
                    print(f"| {'yes' if live else 'no'} | {n} | {times} | {rate} | {memory.peak:.0f} |", flush=True)
            if args.sessions:
                print("\n" + abandoned_sessions(url, pid, args.sessions))
            print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
