"""``python -m talking_head live``: a camera (or a video file, played as a camera would) drives an avatar in
real time, shown in a window and/or recorded to an mp4; frames/s and latency printed at the end."""

from __future__ import annotations

import argparse
import os
import sys
import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace

import numpy as np

from talking_head.commands.common import exit_on_input_error
from talking_head.errors import InputError
from talking_head.live import LiveConfig
from talking_head.options import add_dataclass_arguments, dataclass_from_args, option, required

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


def main(args: argparse.Namespace) -> None:
    import cv2
    import torch

    from talking_head.avatar import Avatar
    from talking_head.live import CameraFeed, LiveSession, run_live
    from talking_head.media import VideoSink, iter_video_frames, probe_video

    options, config = dataclass_from_args(LiveOptions, args), dataclass_from_args(LiveConfig, args)
    torch.set_num_threads(options.threads)
    try:
        avatar = Avatar.load(options.avatar, options.device)
        if options.video:
            info = probe_video(options.video)
            source, fps = iter_video_frames(options.video, decoded=info), info.fps
        else:
            source, fps = camera_frames(options.camera)
    except InputError as error:
        exit_on_input_error(error)
    session = LiveSession(avatar, replace(config, camera_fps=fps))
    window = options.window and display_available()
    size = config.output_size
    shown, latencies, faceless, recorded = 0, [], 0, 0
    with ExitStack() as stack:
        sink = stack.enter_context(VideoSink(options.record, size, size, fps)) if options.record else None
        began = time.monotonic()
        # A file is released at its frame rate, as a camera would (a camera's own reads wait for its frames).
        feed = stack.enter_context(CameraFeed(source, fps=fps if options.video else None))
        if window:
            stack.callback(cv2.destroyAllWindows)
        frames = itertools.takewhile(lambda item: not options.seconds or item[1] - began <= options.seconds, feed)
        # The next frame's landmarks and warp run while this one is generated (run_live's two threads).
        shown_frames = stack.enter_context(closing(run_live(frames, avatar, session=session)))
        try:
            for out in shown_frames:
                shown += 1
                faceless += not out.face_found
                if shown > config.reference_frames:  # the first steps warm up (first calls allocate)
                    latencies.append(out.latency_ms)
                if sink:  # each frame held until the next is ready, so the recording plays in real time
                    slot = round((out.captured_at - began) * fps) + 1
                    for _ in range(max(1, slot - recorded)):
                        sink.write(out.image)
                        recorded += 1
                if window:
                    try:
                        cv2.imshow(WINDOW_TITLE, cv2.cvtColor(out.image, cv2.COLOR_RGB2BGR))
                        key = cv2.waitKey(1) & 0xFF
                    except cv2.error as error:  # an OpenCV built without GUI support
                        reason = str(error).strip().splitlines()[-1]
                        print(f"no window ({reason}); continuing without one", file=sys.stderr)
                        window = False
                        continue
                    if key in (ord("q"), 27):
                        break
                    if key == ord("r"):
                        session.recentre()
        except KeyboardInterrupt:
            pass
        except InputError as error:  # a video file that stops decoding
            exit_on_input_error(error)
    elapsed = time.monotonic() - began
    if not shown:
        exit_on_input_error(InputError("the camera gave no frames"))
    lat = np.array(latencies or [0.0])
    print(f"{shown} frames shown in {elapsed:.1f} s: {shown / elapsed:.1f} frames/s "
          f"({feed.captured} captured, {feed.dropped} dropped, {faceless} without a face); "
          f"latency camera -> shown median {np.median(lat):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms"
          + (f"; recorded {options.record} ({recorded} frames at {fps:g} fps)" if sink else ""))
