"""The app's *Live* tab: the visitor's webcam drives an avatar, frame by frame, through ``talking_head.live``.

The browser streams webcam frames (``gr.Image(sources=["webcam"], streaming=True).stream``); each one
goes through the visitor's own :class:`~talking_head.live.LiveSession`, held in a ``gr.State`` (never
shared between visitors), and the marked face streams back beside the camera picture, with the frames/s
and the server's time per frame. A stream ends at its ``time_limit`` (env ``TALKING_HEAD_LIVE_SECONDS``),
when the camera stops or the tab closes.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import gradio as gr
import numpy as np

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.live import LiveConfig, LiveSession
from talking_head_app.handlers import TalkingHeadApp, visitor_errors

EXAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
#: How long one stream may run before it ends by itself (seconds); start again to go on.
LIVE_SECONDS = int(os.environ.get("TALKING_HEAD_LIVE_SECONDS", "120"))
#: How often the browser sends a webcam frame (seconds). Measured with the shipped checkpoint in headless
#: Chromium on the idle 2-core CPU (``benchmarks/bench_live_browser.py --paths gradio``, two runs each):
#: every 0.1 s gave its ceiling of 10 frames/s at 52 ms a frame on the server, 0.05 s 15.0-15.3 frames/s at
#: 56-57 ms, 0.04 s 11.8-13.0 at 66-77 ms (frames queue behind the serial step). With the slower warp of
#: before (133 ms a frame), 0.05 s had been worse than 0.1 s: a slower server wants 0.1 (the environment variable).
STREAM_EVERY = float(os.environ.get("TALKING_HEAD_LIVE_STREAM_EVERY", "0.05"))
WAITING = "Choose an avatar and press **Start**."
#: After *Start*: the webcam's own buttons, pressed for the visitor (grant access, then record = stream).
START_CAMERA_JS = """() => {
  const camera = document.querySelector('#live-camera');
  const press = (tries) => {
    const record = camera.querySelector('button.capture-button');
    if (record) { if (!record.innerText.includes('Stop')) record.click(); return; }
    const grant = camera.querySelector('[title="grant webcam access"] button');
    if (grant) grant.click();
    if (tries > 0) setTimeout(() => press(tries - 1), 250);
  };
  press(40);
}"""


class LiveHandlers:
    """What the Live tab's buttons and stream do, around the app's pipeline."""

    def __init__(self, app: TalkingHeadApp, config: LiveConfig | None = None) -> None:
        # bfloat16 where the hardware has it (talking_head.device.autocast decides; float32 elsewhere).
        self.app, self.config = app, config or LiveConfig(bf16=True)
        self._example_lock = threading.Lock()

    @functools.cached_property
    def _example(self) -> Avatar:
        """The astronaut, personalised feed-forward once per process (a few seconds on a CPU)."""
        return self.app.pipeline.personalize([EXAMPLE_PHOTO], steps=0)

    @visitor_errors
    def example_avatar(self) -> str:
        """The example avatar as a file of this visitor's (what *Start* loads)."""
        with self._example_lock:
            avatar = self._example
        return str(avatar.save(self.app.folders.new() / "astronaut.avatar.safetensors"))

    @visitor_errors
    def start(self, avatar_file: str | None) -> tuple[LiveSession, np.ndarray, str]:
        """A new session for this visitor on the chosen avatar: (state, the avatar at rest, status)."""
        if not avatar_file:
            raise InputError("choose an avatar first: the one made in Animate, an uploaded .avatar.safetensors file, "
                             "or the example")
        avatar = Avatar.load(avatar_file, self.app.pipeline.device)
        session = LiveSession(avatar, self.config, self.app.pipeline.detector)
        return session, session.last_image, ("Starting the webcam: look into it, face straight ahead for the "
                                             "first second (the neutral pose).")

    def stream(self, frame: np.ndarray | None, session: LiveSession | None
               ) -> tuple[np.ndarray | None, str, LiveSession | None]:
        """One webcam frame -> (the avatar's face, the status line, the session). Never raises: a frame
        without a face shows the last good one and a hint."""
        if session is None:  # no update: a Start finishing meanwhile keeps its session
            return gr.skip(), WAITING, gr.skip()
        if frame is None:
            return session.last_image, "Waiting for the camera.", session
        shown = session.step(frame)
        status = f"**{shown.fps:.1f} frames/s**, {shown.latency_ms:.0f} ms a frame on the server"
        return shown.image, status + (f" — {shown.hint}" if shown.hint else ""), session

    def recentre(self, session: LiveSession | None) -> tuple[LiveSession | None, str]:
        if session is None:
            return None, WAITING
        session.recentre()
        return session, "Re-centred: look straight ahead for a moment."


def build_live_tab(app: TalkingHeadApp, made_avatar: gr.File | None = None) -> LiveHandlers:
    """The *Live* tab, laid out inside the caller's ``gr.Blocks``; ``made_avatar`` is the Animate tab's avatar
    output (offered as a one-click choice)."""
    handlers = LiveHandlers(app)
    with gr.Tab("Live", elem_id="live-tab"):
        gr.Markdown("Your webcam drives an avatar in real time. Choose an avatar and press **Start** (the browser "
                    "asks to use the webcam). Hold still, looking ahead, for the first second: that pose is the neutral one "
                    "(**Re-centre** sets it again). Every frame carries the *SYNTHETIC* mark.")
        with gr.Row(equal_height=True):
            avatar_file = gr.File(label="Avatar (.avatar.safetensors)", file_types=[".safetensors"],
                                  elem_id="live-avatar")
            with gr.Column():
                use_made = gr.Button("Use the avatar made in Animate", elem_id="live-use-made",
                                     visible=made_avatar is not None)
                example = gr.Button("Example avatar (the astronaut)", elem_id="live-example")
                start = gr.Button("Start", variant="primary", elem_id="live-start")
                recentre = gr.Button("Re-centre", elem_id="live-recentre")
        status = gr.Markdown(WAITING, elem_id="live-stats")
        with gr.Row():
            camera = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", elem_id="live-camera",
                              height=320)
            output = gr.Image(label="Avatar (live)", interactive=False, elem_id="live-output", format="jpeg",
                              height=320)
        session = gr.State(None)
    if made_avatar is not None:
        use_made.click(lambda path: path, made_avatar, avatar_file, api_visibility="private")
    example.click(handlers.example_avatar, None, avatar_file, api_visibility="private")
    start.click(handlers.start, avatar_file, [session, output, status], api_visibility="private").success(
        None, js=START_CAMERA_JS)
    recentre.click(handlers.recentre, session, [session, status], api_visibility="private")
    camera.stream(handlers.stream, [camera, session], [output, status, session], stream_every=STREAM_EVERY,
                  time_limit=LIVE_SECONDS, show_progress="hidden", api_visibility="private")
    return handlers
