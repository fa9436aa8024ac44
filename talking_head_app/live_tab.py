"""The app's *Live* tab: the visitor's webcam drives an avatar, frame by frame, through ``talking_head.live``.

The browser streams webcam frames (``gr.Image(sources=["webcam"], streaming=True).stream``); each one
goes through the visitor's own :class:`~talking_head.live.LiveSession`, held in a ``gr.State`` (never
shared between visitors; the state holds its key, :mod:`talking_head_app.live_sessions` the session), and
the marked face streams back beside the camera picture, with the frames/s and the server's time per
frame. A stream ends at its time limit, after a few seconds without a frame
(:mod:`talking_head_app.live_streams`), when the camera stops or the tab closes. Streams have their
own slots (:class:`LiveSettings`), apart from the render jobs' one queue.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.live import LiveConfig, LiveSession
from talking_head_app.gradio_events import waiting
from talking_head_app.handlers import TalkingHeadApp, every, visitor_errors
from talking_head_app.live_sessions import LiveSessions
from talking_head_app.live_streams import IdleStreams

EXAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


@dataclass(frozen=True)
class LiveSettings:
    """How the Live tab shares the server; :meth:`from_env` reads the Space's variables."""

    seconds: int = 120  # env TALKING_HEAD_LIVE_SECONDS: one stream's longest run; start again to go on
    #: env TALKING_HEAD_LIVE_STREAM_EVERY: how often the browser sends a webcam frame (seconds). Measured with
    #: the shipped checkpoint in headless Chromium on the idle 2-core CPU (``benchmarks/bench_live_browser.py
    #: --paths gradio``, two runs each): every 0.1 s gave its ceiling of 10 frames/s at 52 ms a frame on the
    #: server, 0.05 s 15.0-15.3 frames/s at 56-57 ms, 0.04 s 11.8-13.0 at 66-77 ms (frames queue behind the
    #: serial step). A slower server wants 0.1.
    stream_every: float = 0.05
    #: env TALKING_HEAD_LIVE_STREAMS: streams served at once (None: :func:`default_streams`); more wait in line
    streams: int | None = None
    idle_seconds: float = 8  # env TALKING_HEAD_LIVE_IDLE_SECONDS: a stream with no frame for this long ends
    session_seconds: float = 600  # env TALKING_HEAD_LIVE_SESSION_TTL: an unused live session is dropped after this

    @classmethod
    def from_env(cls) -> LiveSettings:
        streams = os.environ.get("TALKING_HEAD_LIVE_STREAMS")
        return cls(seconds=int(os.environ.get("TALKING_HEAD_LIVE_SECONDS", cls.seconds)),
                   stream_every=float(os.environ.get("TALKING_HEAD_LIVE_STREAM_EVERY", cls.stream_every)),
                   streams=int(streams) if streams else None,
                   idle_seconds=float(os.environ.get("TALKING_HEAD_LIVE_IDLE_SECONDS", cls.idle_seconds)),
                   session_seconds=float(os.environ.get("TALKING_HEAD_LIVE_SESSION_TTL", cls.session_seconds)))

    @property
    def stream_slots(self) -> int:
        return self.streams or default_streams()


def default_streams(cpus: int | None = None) -> int:
    """Streams at once on ``cpus`` cores (default: this machine's): one a core pair, at least two. A frame
    of the shipped model takes about 50 ms of both cores of a 2-core CPU, so two streams there share them
    at about half the rate each, and a render job slows both."""
    return max(2, (cpus or os.cpu_count() or 2) // 2)


WAITING = "Choose an avatar and press **Start**."
EXPIRED = "This live session has ended (unused for a while): press **Start** again."
EXAMPLE_FILE = "astronaut.avatar.safetensors"
LIVE_QUEUE = "live"  # the streams' concurrency group
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

    def __init__(self, app: TalkingHeadApp, config: LiveConfig | None = None,
                 settings: LiveSettings | None = None) -> None:
        # bfloat16 where the hardware has it (talking_head.device.autocast decides; float32 elsewhere).
        self.app, self.config = app, config or LiveConfig(bf16=True)
        self.settings = settings or LiveSettings.from_env()
        self.sessions = LiveSessions(self.settings.session_seconds)
        self.streams = IdleStreams(self.settings.idle_seconds)
        self._example_lock = threading.Lock()
        self._example_folder: tempfile.TemporaryDirectory | None = None  # removed with the process

    @visitor_errors
    def example_avatar(self) -> str:
        """The example avatar's file (what *Start* loads): the astronaut, personalised feed-forward once per
        server (a few seconds on a CPU; ``python app.py`` calls this at start-up, so no visitor waits for it)
        and saved once, read-only, for every visitor (it is the same for all; Gradio's cache, keyed by the
        file's content, then holds one copy however often it is chosen)."""
        with self._example_lock:
            if self._example_folder is None:
                folder = tempfile.TemporaryDirectory(prefix="talking-head-example-")
                avatar = self.app.pipeline.personalize([EXAMPLE_PHOTO], steps=0)
                avatar.save(Path(folder.name) / EXAMPLE_FILE).chmod(0o444)
                self._example_folder = folder
        return str(Path(self._example_folder.name) / EXAMPLE_FILE)

    @visitor_errors
    def start(self, avatar_file: str | None) -> tuple[str, np.ndarray, str]:
        """A new session for this visitor on the chosen avatar: (its key for the state, the avatar at rest,
        status). The status says when every stream slot is taken: the stream then waits in line."""
        if not avatar_file or not isinstance(avatar_file, str):
            raise InputError("choose an avatar first: the one made in Animate, an uploaded .avatar.safetensors file, "
                             "or the example")
        avatar = Avatar.load(avatar_file, self.app.pipeline.device)
        session = LiveSession(avatar, self.config, self.app.pipeline.detector)
        status = "Starting the webcam: look into it, face straight ahead for the first second (the neutral pose)."
        slots = self.settings.stream_slots
        if self.streams.active >= slots:
            status += (f" Every live slot ({slots}) is in use: yours is number {waiting(LIVE_QUEUE) + 1} in line and "
                       f"starts when a stream ends (after {self.settings.seconds} s, or {self.settings.idle_seconds:g} s "
                       f"without a frame).")
        return self.sessions.add(session), session.last_image, status

    def stream(self, frame: np.ndarray | None, key: str | None) -> tuple[np.ndarray | None, str, str | None]:
        """One webcam frame -> (the avatar's face, the status line, the session's key). Never raises: a
        frame without a face shows the last good one and a hint."""
        self.streams.saw_frame()
        if key is None:  # no update: a Start finishing meanwhile keeps its session
            return gr.skip(), WAITING, gr.skip()
        session = self.sessions.get(key)
        if session is None:
            return gr.skip(), EXPIRED, None
        if frame is None:
            return session.last_image, "Waiting for the camera.", key
        shown = session.step(frame)
        status = f"**{shown.fps:.1f} frames/s**, {shown.latency_ms:.0f} ms a frame on the server"
        return shown.image, status + (f" — {shown.hint}" if shown.hint else ""), key

    def recentre(self, key: str | None) -> tuple[str | None, str]:
        session = self.sessions.get(key)
        if session is None:
            return None, WAITING if key is None else EXPIRED
        session.recentre()
        return key, "Re-centred: look straight ahead for a moment."


def build_live_tab(app: TalkingHeadApp, made_avatar: gr.File | None = None,
                   handlers: LiveHandlers | None = None) -> LiveHandlers:
    """The *Live* tab, laid out inside the caller's ``gr.Blocks``, around ``handlers`` (default: made here);
    ``made_avatar`` is the Animate tab's avatar output (offered as a one-click choice). *Start* and the
    streams have the live slots; the rest (the example avatar once made: :meth:`LiveHandlers.example_avatar`)
    is instant and waits for nothing."""
    handlers = handlers or LiveHandlers(app)
    live = handlers.settings
    every(max(1.0, live.session_seconds / 4), handlers.sessions.sweep, "sweep-live-sessions")  # with no traffic too
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
        session = gr.State(None, time_to_live=live.session_seconds)  # the key of the visitor's LiveSession
    if made_avatar is not None:
        use_made.click(lambda path: path, made_avatar, avatar_file, api_visibility="private", concurrency_limit=None)
    # made once per server (python app.py makes it at start-up): then instant, so it waits behind no render
    example.click(handlers.example_avatar, None, avatar_file, api_visibility="private", concurrency_limit=None)
    start.click(handlers.start, avatar_file, [session, output, status], api_visibility="private",
                concurrency_id="live-start", concurrency_limit=live.stream_slots).success(None, js=START_CAMERA_JS)
    recentre.click(handlers.recentre, session, [session, status], api_visibility="private", concurrency_limit=None)
    camera.stream(handlers.stream, [camera, session], [output, status, session], stream_every=live.stream_every,
                  time_limit=live.seconds, show_progress="hidden", api_visibility="private",
                  concurrency_id=LIVE_QUEUE, concurrency_limit=live.stream_slots)
    return handlers
