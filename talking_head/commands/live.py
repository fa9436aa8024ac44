"""``python -m talking_head live``: a camera (or a video file, played as a camera would) drives an avatar in
real time, shown in a window and/or recorded to an mp4; frames/s and latency printed at the end."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from talking_head.commands.common import exit_on_input_error
from talking_head.errors import InputError
from talking_head.live import LiveConfig
from talking_head.options import add_dataclass_arguments, dataclass_from_args, option, required

if TYPE_CHECKING:
    from talking_head.avatar import Avatar
    from talking_head.live import CameraFeed, LiveSession

WINDOW_TITLE = "talking-head live (q or Esc: quit, r: re-centre)"


@dataclass
class LiveOptions:
    avatar: str = required("avatar file (.avatar.safetensors) saved by `personalize --save` or the app")
    camera: int = option(0, "OpenCV camera index")
    video: str | None = option(None, "drive from this video file instead of a camera, its frames released at its "
                               "own frame rate as a camera's would be (frames the loop is too slow for are dropped)")
    record: str | None = option(None, "also write what is shown to this mp4 (at the camera's frame rate)")
    window: bool = option(True, "show the result in a window when a display exists")
    seconds: float = option(0.0, "stop after this many seconds (0: when the video ends, or q / Esc / Ctrl-C)")
    threads: int = option(2, "torch threads")
    device: str = option("cpu", "torch device for the avatar's generator (cpu, cuda, ...)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, LiveOptions)
    add_dataclass_arguments(parser, LiveConfig)


def display_available() -> bool:
    """Whether a window can be opened: a display on Linux; assumed elsewhere."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def camera_frames(index: int) -> tuple[Iterator[np.ndarray], float]:
    """RGB frames from OpenCV camera ``index`` and its frame rate, or an :class:`InputError` if it cannot open."""
    import cv2

    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise InputError(f"no camera could be opened at index {index} (none connected, or in use by another "
                         f"program); choose another with --camera N, or drive from a video file with --video FILE")
    fps = capture.get(cv2.CAP_PROP_FPS)

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), fps if 1 <= fps <= 120 else 25.0


@dataclass
class LiveRun:
    """What the end-of-run line reports: frames shown (without a face), latencies after the warm-up, frames
    recorded, and when the loop began (``time.monotonic``)."""

    began: float
    shown: int = 0
    faceless: int = 0
    recorded: int = 0
    latencies: list[float] = field(default_factory=list)


class Window:
    """The on-screen window, while one can be shown: each frame shown, and the key pressed read as an action."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def show(self, image: np.ndarray) -> str | None:
        """Show ``image``; ``quit`` (q or Esc), ``recentre`` (r) or None. Without GUI support in OpenCV the
        window is given up, once, with a line saying so."""
        import cv2

        if not self.enabled:
            return None
        try:
            cv2.imshow(WINDOW_TITLE, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as error:  # an OpenCV built without GUI support
            reason = str(error).strip().splitlines()[-1]
            print(f"no window ({reason}); continuing without one", file=sys.stderr)
            self.enabled = False
            return None
        return "quit" if key in (ord("q"), 27) else "recentre" if key == ord("r") else None


def main(args: argparse.Namespace) -> None:
    import torch

    from talking_head.live import LiveSession

    options, config = dataclass_from_args(LiveOptions, args), dataclass_from_args(LiveConfig, args)
    torch.set_num_threads(options.threads)
    avatar, source, fps = _open_inputs(options)
    session = LiveSession(avatar, replace(config, camera_fps=fps))
    run, feed = _drive(options, config, session, source, fps)
    elapsed = time.monotonic() - run.began
    if not run.shown:
        exit_on_input_error(InputError("the camera gave no frames"))
    lat = np.array(run.latencies or [0.0])
    print(f"{run.shown} frames shown in {elapsed:.1f} s: {run.shown / elapsed:.1f} frames/s "
          f"({feed.captured} captured, {feed.dropped} dropped, {run.faceless} without a face); "
          f"latency camera -> shown median {np.median(lat):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms"
          + (f"; recorded {options.record} ({run.recorded} frames at {fps:g} fps)" if options.record else ""))


def _open_inputs(options: LiveOptions) -> tuple[Avatar, Iterator[np.ndarray], float]:
    """The avatar, the frames that drive it and their frame rate; a bad file or camera ends in its message."""
    from talking_head.avatar import Avatar
    from talking_head.media import iter_video_frames, probe_video

    try:
        avatar = Avatar.load(options.avatar, options.device)
        if options.video:
            info = probe_video(options.video)
            return avatar, iter_video_frames(options.video, decoded=info), info.fps
        return avatar, *camera_frames(options.camera)
    except InputError as error:
        exit_on_input_error(error)


def _drive(options: LiveOptions, config: LiveConfig, session: LiveSession, source: Iterator[np.ndarray],
           fps: float) -> tuple[LiveRun, CameraFeed]:
    """Run the live loop until the source ends, the time is up, or q / Esc / Ctrl-C: each frame shown in the
    window and recorded (each held until the next is ready, so the recording plays in real time)."""
    import cv2

    from talking_head.live import CameraFeed, run_live
    from talking_head.media import VideoSink

    window = Window(options.window and display_available())
    size = config.output_size
    with ExitStack() as stack:
        sink = stack.enter_context(VideoSink(options.record, size, size, fps)) if options.record else None
        run = LiveRun(began=time.monotonic())
        # A file is released at its frame rate, as a camera would (a camera's own reads wait for its frames).
        feed = stack.enter_context(CameraFeed(source, fps=fps if options.video else None))
        if window.enabled:
            stack.callback(cv2.destroyAllWindows)
        frames = itertools.takewhile(lambda item: not options.seconds or item[1] - run.began <= options.seconds,
                                     feed)
        # The next frame's landmarks and warp run while this one is generated (run_live's two threads).
        shown_frames = stack.enter_context(closing(run_live(frames, session.avatar, session=session)))
        try:
            for out in shown_frames:
                run.shown += 1
                run.faceless += not out.face_found
                if run.shown > config.reference_frames:  # the first steps warm up (first calls allocate)
                    run.latencies.append(out.latency_ms)
                if sink:
                    slot = round((out.captured_at - run.began) * fps) + 1
                    for _ in range(max(1, slot - run.recorded)):
                        sink.write(out.image)
                        run.recorded += 1
                action = window.show(out.image)
                if action == "quit":
                    break
                if action == "recentre":
                    session.recentre()
        except KeyboardInterrupt:
            pass
        except InputError as error:  # a video file that stops decoding
            exit_on_input_error(error)
    return run, feed
