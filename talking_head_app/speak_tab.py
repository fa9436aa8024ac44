"""The app's *Speak* tab: a photo and a voice (recorded with the microphone, uploaded, or typed) become a video of
the photo saying it (``talking_head.speech``), the voice in the video, the *SYNTHETIC* mark on every frame.

The job shares the render jobs' one queue and is cancelled like them; the photo is checked and its face found
before the (Zero)GPU is taken, as in *Animate*.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gradio as gr
import spaces

from talking_head.errors import InputError
from talking_head.pipeline import Shots
from talking_head.render import RenderConfig
from talking_head.speech.liveliness import LivelinessConfig
from talking_head.speech.tts import DEFAULT_VOICE
from talking_head_app.handlers import (
    GPU_SECONDS_FIXED,
    GPU_SECONDS_PER_FACE,
    GPU_SECONDS_PER_FRAME,
    ZERO_GPU_MAX_SECONDS,
    TalkingHeadApp,
    checked_seed,
    gradio_progress,
    visitor_errors,
)
from talking_head_app.jobs import one_queue, stoppable

#: espeak-ng voices offered for typed text (it has many more; these read their own languages well).
VOICES = ("en-us", "en", "de", "fr", "es", "it", "pt", "nl")
EXAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
INTRO = ("A photo says what you record, upload or type: the mouth opens and shuts with the voice, the eyes blink, "
         "the head moves with its emphasis (docs/speak.md says how). Typed text is spoken by espeak-ng. Every frame "
         "carries the *SYNTHETIC* mark.")


def speak_gpu_seconds(*_: object, **__: object) -> int:
    """Seconds to reserve on ZeroGPU: the longest voice accepted, rendered (:mod:`talking_head_app.handlers`)."""
    frames = 25 * 60  # the default video limit's frames; a shorter voice returns the slot early
    return int(min(ZERO_GPU_MAX_SECONDS, GPU_SECONDS_FIXED + frames * (GPU_SECONDS_PER_FRAME + GPU_SECONDS_PER_FACE)))


class SpeakHandlers:
    """The tab's one event, around the app's pipeline and per-request folders."""

    def __init__(self, app: TalkingHeadApp) -> None:
        self.app = app
        self._speak_on_gpu = spaces.GPU(duration=speak_gpu_seconds)(self._speak)

    @visitor_errors
    def speak(self, photos: Sequence[str] | None, audio: str | None, text: str | None, voice: str = DEFAULT_VOICE,
              seed: float = 0, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
        """Photos + a voice file or a text -> (the mp4, notes in markdown)."""
        paths = [p["path"] if isinstance(p, dict) else str(p) for p in ([photos] if isinstance(photos, str)
                                                                         else photos or [])]
        self.app.pipeline.check_photos(paths)
        text = text.strip() if isinstance(text, str) and text.strip() else None
        if (audio is None) == (text is None):
            raise InputError("record or upload a voice, or type something to say (one of them, not both)")
        if text is not None and voice not in VOICES:
            raise InputError(f"choose a voice among {', '.join(VOICES)}")
        shots = self.app.pipeline.prepare_shots(paths, gradio_progress(progress))
        return self._speak_on_gpu(shots, audio, text, voice, checked_seed(seed), progress)

    def _speak(self, shots: Shots, audio: str | None, text: str | None, voice: str, seed: int,
               progress: gr.Progress) -> tuple[str, str]:
        with self.app.folders.job() as folder:
            avatar = self.app.pipeline.personalize(shots, 0)
            result = self.app.pipeline.speak(avatar, folder / "spoken.mp4", audio, text, RenderConfig(),
                                             LivelinessConfig(seed=seed), voice, gradio_progress(progress))
        video = result.render
        lines = [f"{video.num_frames} frames at {video.fps:g} fps, rendered in {video.seconds:.1f} s, with the voice",
                 *result.notes]
        return str(video.path), "\n".join(f"- {line}" for line in lines)


def build_speak_tab(app: TalkingHeadApp, handlers: SpeakHandlers | None = None) -> SpeakHandlers:
    """The *Speak* tab, laid out inside the caller's ``gr.Blocks``, its button in the jobs' one queue."""
    handlers = handlers or SpeakHandlers(app)
    with gr.Tab("Speak", elem_id="speak-tab"):
        gr.Markdown(INTRO)
        with gr.Row():
            photos = gr.File(label="Photo(s) of one face", file_count="multiple", file_types=["image"],
                             elem_id="speak-photos", value=[str(EXAMPLE_PHOTO)])
            with gr.Column():
                audio = gr.Audio(label="Voice: upload or record", sources=["upload", "microphone"], type="filepath",
                                 format=None, elem_id="speak-audio")
                text = gr.Textbox(label="Or type what to say", lines=2, max_length=2000, elem_id="speak-text")
                with gr.Row():
                    voice = gr.Dropdown(list(VOICES), value=DEFAULT_VOICE, label="Voice for typed text",
                                        elem_id="speak-voice")
                    seed = gr.Number(0, label="Seed (blinks, head motion)", precision=0, elem_id="speak-seed")
        button = gr.Button("Speak", variant="primary", elem_id="speak-btn")
        video = gr.Video(label="Result", elem_id="speak-video", interactive=False, height=360)
        notes = gr.Markdown(elem_id="speak-notes")
    button.click(stoppable(handlers.speak), [photos, audio, text, voice, seed], [video, notes], api_name="speak",
                 **one_queue(app.settings.concurrency))
    return handlers
