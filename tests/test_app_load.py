"""The app under load, as visitors meet it: served on 127.0.0.1 (tiny weights) from this process, whose
threads' CPU and memory the tests read. Jobs are driven with gradio_client; the Live tab, whose events
are private and whose webcam streams frame by frame, with tests/queue_visitor.py.

One server for the module, with one job at a time, two live streams, and short live expiries (a stream
ends after 3 s without a frame, a session after 2 s unused) so that the tests can wait for them.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from app_support import ASTRONAUT, PERSON, build_tiny_app, served_in_process, visitor
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from queue_visitor import QueueVisitor, image_payload

from talking_head.clip_shots import ClipShotsConfig
from talking_head_app.handlers import quoted
from talking_head_app.live_tab import LiveSettings, default_streams

IDLE_SECONDS, SESSION_SECONDS = 3, 2
#: A generate this long runs for minutes with the tiny model: long enough to be cancelled midway.
LONG_STEPS = 5000
STARTED = {Status.PROCESSING, Status.PROGRESS, Status.ITERATING, Status.FINISHED}


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """(url, process id, the app's folder of request folders)."""
    app = build_tiny_app(tmp_path_factory, concurrency=1)
    app.settings = replace(app.settings, max_steps=LONG_STEPS)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("STREAMS", 2), ("IDLE_SECONDS", IDLE_SECONDS), ("SESSION_TTL", SESSION_SECONDS)):
            patch.setenv(f"TALKING_HEAD_LIVE_{name}", str(value))
        with served_in_process(app) as url:
            yield url, os.getpid(), app.folders.root


def cpu_seconds(stat: Path) -> float:
    """CPU time (user + system) of the process or thread whose ``/proc/.../stat`` this is (0 once gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_shares(pid: int, seconds: float) -> dict[str, float]:
    """Cores each thread of the process ``pid`` keeps busy over the next ``seconds``."""
    before = {task.name: cpu_seconds(task / "stat") for task in Path(f"/proc/{pid}/task").iterdir()}
    time.sleep(seconds)
    return {tid: (cpu_seconds(Path(f"/proc/{pid}/task/{tid}/stat")) - used) / seconds for tid, used in before.items()}


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


def wait_for(condition, timeout: float, step: float = 0.1) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, "timed out"
        time.sleep(step)
    return time.monotonic() - began


def written(folder: Path, name: str) -> list[Path]:
    return list(folder.rglob(name))


def job_thread(pid: int) -> tuple[str, float]:
    """The busiest thread of ``pid`` over a second (a running job's: torch runs on one thread, see conftest)
    and the cores it kept busy."""
    busy = thread_shares(pid, 1.0)
    worker = max(busy, key=busy.get)
    return worker, busy[worker]


def seconds_until_idle(pid: int, thread: str) -> float:
    return wait_for(lambda: thread_shares(pid, 0.5)[thread] < 0.04, timeout=5)


def test_a_cancelled_job_stops_within_seconds_writes_nothing_and_frees_its_slot_after(
        app_server: tuple[str, int, Path], driver_video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "talking_head_app")
    url, pid, folder = app_server
    client = visitor(url, tmp_path)
    job = client.submit([handle_file(PERSON[0])], handle_file(driver_video), LONG_STEPS, api_name="/generate")
    wait_for(lambda: "fine-tuning step" in str(job.status().progress_data), timeout=60)  # steps under way
    worker, busy = job_thread(pid)
    assert busy > 0.2  # fine-tuning, on a machine that may be shared
    cancelled = time.monotonic()
    job.cancel()  # returns once the job has stopped (the server answers the cancel then)
    answered = time.monotonic() - cancelled
    stopped = seconds_until_idle(pid, worker) + answered
    print(f"cancelled job: cancel answered after {answered:.1f} s, its thread idle {stopped:.1f} s after the cancel "
          f"(was {busy:.2f} cores); server: {caplog.text.split('a cancelled generate ')[-1].splitlines()[0]}")
    assert not written(folder, "result.mp4") and not written(folder, "avatar.safetensors")
    # the slot is free once it stopped: a 0-step job runs at once
    began = time.monotonic()
    client.predict([handle_file(PERSON[0])], handle_file(driver_video), 0, api_name="/generate")
    assert time.monotonic() - began < 30


def test_a_job_whose_visitor_leaves_stops_within_seconds(app_server: tuple[str, int, Path],
                                                         driver_video: Path) -> None:
    url, pid, _ = app_server
    tab = QueueVisitor(url)
    job = tab.submit("gen-btn", "click", [[tab.upload(PERSON[1])], tab.upload(driver_video), LONG_STEPS, "relative",
                                          False, False, 256, "bottom-right", 0, False, None,
                                          ClipShotsConfig().shots, 1])  # no clip; the largest face
    wait_for(lambda: any("fine-tuning step" in text for text in job.progress), timeout=60)
    worker, busy = job_thread(pid)
    assert busy > 0.2
    tab.close()  # the tab closes: its connection goes
    stopped = seconds_until_idle(pid, worker)
    print(f"abandoned job: its thread idle {stopped:.1f} s after the visitor left (was {busy:.2f} cores)")


def test_a_compare_submitted_during_a_generate_starts_only_after_it(app_server: tuple[str, int, Path],
                                                                    driver_video: Path, tmp_path: Path) -> None:
    url, _, _ = app_server
    generating = visitor(url, tmp_path / "a").submit([handle_file(PERSON[0])], handle_file(driver_video), 20,
                                                     api_name="/generate")
    wait_for(lambda: generating.status().code == Status.PROGRESS, timeout=60)
    comparing = visitor(url, tmp_path / "b").submit([handle_file(PERSON[0])], handle_file(driver_video), "1", 0,
                                                    api_name="/compare")
    seen_while_generating = set()
    while generating.status().code != Status.FINISHED:  # as the server said (its files still on their way)
        seen_while_generating.add(comparing.status().code)
        time.sleep(0.1)
    assert Status.IN_QUEUE in seen_while_generating and not seen_while_generating & STARTED
    assert generating.result()[1] and comparing.result(timeout=120)[0]


def live_visitor(url: str, avatar: dict) -> QueueVisitor:
    """A visitor who pressed Start on the example avatar."""
    tab = QueueVisitor(url)
    tab.call("live-start", "click", [avatar])
    return tab


def test_two_live_streams_both_get_frames_and_an_idle_one_ends_and_frees_its_slot(
        app_server: tuple[str, int, Path]) -> None:
    url, _, _ = app_server
    avatar = QueueVisitor(url).call("live-example", "click", [])[0]
    frame = image_payload(ASTRONAUT)
    first, second, third = (live_visitor(url, avatar) for _ in range(3))
    streams = {tab: tab.submit("live-camera", "stream", [frame, None]) for tab in (first, second)}
    began = time.monotonic()
    while min(len(stream.outputs) for stream in streams.values()) < 4:  # both stream at once
        assert time.monotonic() - began < 30, [len(stream.outputs) for stream in streams.values()]
        for tab, stream in streams.items():
            tab.send(stream, [frame, None])
        time.sleep(0.25)
    overlap = min(stream.outputs[-1][0] for stream in streams.values()) - max(
        stream.outputs[0][0] for stream in streams.values())
    assert overlap > 0  # each had frames back while the other was streaming
    # the first goes quiet; the third asks for a slot meanwhile and waits in line
    quiet = time.monotonic()
    waiting = third.submit("live-camera", "stream", [frame, None])
    while not streams[first].done.is_set() and time.monotonic() - quiet < 12:
        second.send(streams[second], [frame, None])
        time.sleep(0.25)
    ended = streams[first].ended - quiet
    print(f"idle stream ended {ended:.1f} s after its last frame; the waiting one started "
          f"{(waiting.started or 0) - quiet:.1f} s after")
    assert streams[first].done.is_set() and ended < 10
    assert not streams[second].done.is_set()  # a stream with frames goes on
    wait_for(lambda: waiting.outputs, timeout=5)  # the freed slot went to the one waiting
    assert waiting.started >= streams[first].ended - 0.5


def test_abandoned_live_sessions_leave_memory_after_their_expiry(app_server: tuple[str, int, Path],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "talking_head_app")
    url, pid, _ = app_server
    avatar = QueueVisitor(url).call("live-example", "click", [])[0]
    idle = resident_mb(pid)
    with ThreadPoolExecutor(2) as pool:
        tabs = list(pool.map(lambda _: live_visitor(url, avatar), range(50)))
    started = resident_mb(pid)
    for tab in tabs[1:]:
        tab.close()


    def sweeps() -> list[tuple[str, str]]:
        return re.findall(r"dropped (\d+) live sessions unused for .* s, (\d+) left", caplog.text)

    # Expiry, and the sweep that follows it: on a loaded machine the last sessions start late and expire late,
    # so wait for the sweep that leaves none rather than a fixed time.
    wait_for(lambda: bool(sweeps()) and sweeps()[-1][1] == "0", timeout=SESSION_SECONDS * 10)
    after = resident_mb(pid)
    print(f"server memory: idle {idle:.0f} MB, 50 live sessions {started:.0f} MB, after expiry {after:.0f} MB")
    assert after - idle < 100
    # All gone, none kept. On a loaded machine a Start or two among the 50 may be turned away (queue full) and
    # make no session: the sweeps must drop nearly all of them and leave none.
    assert sum(int(dropped) for dropped, _ in sweeps()) >= 45
    stream = tabs[0].submit("live-camera", "stream", [image_payload(ASTRONAUT), None])  # one comes back
    wait_for(lambda: stream.outputs, timeout=10)
    assert "press **Start**" in str(stream.outputs[-1][1])  # the state or the session expired: start again


def test_the_example_avatar_is_made_once_and_shared(app_server: tuple[str, int, Path]) -> None:
    url, _, folder = app_server
    paths = {QueueVisitor(url).call("live-example", "click", [])[0]["path"] for _ in range(10)}
    assert len(paths) == 1  # one file in Gradio's cache (keyed by content) for everyone
    assert len(list(Path(next(iter(paths))).parent.iterdir())) == 1
    assert not written(folder, "astronaut.avatar.safetensors")  # no copy per visitor among the requests


def test_api_inputs_of_the_wrong_kind_get_short_clear_messages(app_server: tuple[str, int, Path],
                                                               driver_video: Path, tmp_path: Path) -> None:
    url, _, _ = app_server
    client = visitor(url, tmp_path)
    photo, driver = [handle_file(ASTRONAUT)], handle_file(driver_video)
    junk = "7," * 1_000_000  # 2 MB
    cases = [  # (arguments, api, what the message says)
        ((photo, driver, None, 0), "/compare", "K values must be whole numbers"),
        ((photo, driver, junk, 0), "/compare", "K values must be whole numbers"),
        ((photo, driver, {"k": 1}, 0), "/compare", "K values must be whole numbers"),
        ((5, driver, 0), "/generate", "Photos of one person .*: expected a list of files"),
        (({"a": 1}, driver, 0), "/generate", "expected a list of files"),
        ((photo, [1, 2], 0), "/generate", "Driving video: expected a file"),
        ((photo, driver, 0, "x" * 5000), "/generate", "Motion transfer: expected one of 'relative', 'absolute'"),
        ((photo, driver, 0, "relative", False, False, junk), "/generate", "Output height .*: expected one of"),
        ((photo, driver, 0, "relative", False, False, 256, 3), "/generate", "Corner of .*: expected one of"),
        ((3, driver), "/animate_avatar", "Avatar file .*: expected a file"),
    ]
    for arguments, api, message in cases:
        with pytest.raises(AppError, match=message) as refused:
            client.predict(*arguments, api_name=api)
        assert len(str(refused.value)) < 300, str(refused.value)[:400]


# -- settings, without a server ------------------------------------------------------------------------

def test_live_slots_are_sized_to_the_cpu_and_every_live_setting_read_from_its_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert [default_streams(cpus) for cpus in (1, 2, 4, 16)] == [2, 2, 2, 8]
    for name, value in (("STREAMS", "5"), ("IDLE_SECONDS", "4"), ("SESSION_TTL", "30"), ("SECONDS", "60"),
                        ("STREAM_EVERY", "0.1")):
        monkeypatch.setenv(f"TALKING_HEAD_LIVE_{name}", value)
    assert LiveSettings.from_env() == LiveSettings(seconds=60, stream_every=0.1, streams=5, idle_seconds=4,
                                                   session_seconds=30)
    assert LiveSettings.from_env().stream_slots == 5 and LiveSettings().stream_slots == default_streams()


def test_messages_quote_at_most_100_characters_of_what_was_sent() -> None:
    assert quoted("1, 8") == "'1, 8'"
    long = quoted("x" * 10**6)
    assert long.startswith("'xxx") and long.endswith("... (1000002 characters)") and len(long) < 130
