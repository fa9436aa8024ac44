"""talking-head's Gradio app (the Hugging Face Space's entry point): layout only.

What each button does lives in ``talking_head_app/handlers.py``. ``python app.py`` serves on
0.0.0.0:7860 (``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` override) with the weights loaded once.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import spaces  # noqa: F401  (ZeroGPU must be imported before torch to manage CUDA; a no-op elsewhere)

from talking_head.clip_shots import ClipShotsConfig
from talking_head.config import ks_text
from talking_head.landmarks.align import RETARGET_MODES
from talking_head.render import RenderConfig
from talking_head.watermark import POSITIONS
from talking_head_app.handlers import AUTO_OUTPUT_SIZE, AppSettings, TalkingHeadApp, checked_by_the_app, short_refusals
from talking_head_app.jobs import one_queue, stoppable
from talking_head_app.live_tab import LiveHandlers, build_live_tab
from talking_head_app.speak_tab import build_speak_tab

EXAMPLES = Path(__file__).resolve().parent / "examples"
PERSON = [str(EXAMPLES / f"person_{i}.jpg") for i in (1, 2, 3)]
ASTRONAUT, DRIVER = str(EXAMPLES / "astronaut.jpg"), str(EXAMPLES / "driver.mp4")
VIDEO_HEIGHT = 360
#: A clip of yourself is shown smaller: it is an input, what matters is the shots chosen from it.
CLIP_HEIGHT = 240
#: Gradio converts uploads to this format with the system's ffmpeg (webcam webm has no duration, so
#: converting helps); without a system ffmpeg that conversion fails for every non-mp4 upload, so then
#: videos are passed through as they are and read by the bundled ffmpeg (imageio-ffmpeg).
VIDEO_FORMAT = "mp4" if shutil.which("ffmpeg") else None
GENERATOR_INFO = ("off: the photo's own pixels warped (scored as well on real faces, in half the time); on: the "
                  "learned generator repaints the inside of the mouth, and fine-tuning steps train it")

INTRO = """# talking-head
Few-shot talking heads ([Zakharov et al., 2019](https://arxiv.org/abs/1905.08233)): a few photos of a
face, a driving video, and the face in your photos moves and talks like the one in the video.
Upload 1 to {max_shots} photos of **one** person or a short clip of yourself, a driving video (or record one), then
press **Generate**."""
CLIP_LABEL = "Or a clip of yourself: record 5 s, turn your head a little and say a few words"

INTENDED_USE = """**Intended use.** Animate photos of yourself, or of people who have agreed to it. Every video
carries a visible *SYNTHETIC - AI generated* mark and a notice in its metadata, and this app has no
setting that removes them. Do not use it to impersonate anyone, to deceive, or to make videos of a
person without their consent. Uploads and results are deleted from the server after about an hour."""


def build_demo(app: TalkingHeadApp, live: LiveHandlers | None = None) -> gr.Blocks:
    """The UI around ``app``'s handlers (the Live tab's: ``live``, default made here), with its queue
    configured (not launched)."""
    settings, limits = app.settings, app.pipeline.limits
    with gr.Blocks(title="talking-head", delete_cache=(settings.sweep_seconds, settings.file_ttl_seconds)) as demo:
        gr.Markdown(INTRO.format(max_shots=limits.max_shots))
        with gr.Tab("Animate"):
            with gr.Row():
                with gr.Column():
                    photos = gr.File(label=f"Photos of one person (1 to {limits.max_shots})", file_count="multiple",
                                     file_types=["image"], elem_id="photos")
                    faces, face = face_picker()
                    clip = gr.Video(label=CLIP_LABEL, sources=["upload", "webcam"], format=VIDEO_FORMAT,
                                    height=CLIP_HEIGHT, elem_id="clip")
                    clip_shots = clip_shots_slider(limits.max_shots)
                    driver = gr.Video(label="Driving video", sources=["upload", "webcam"], format=VIDEO_FORMAT,
                                      elem_id="driver")
                    steps = gr.Slider(0, settings.max_steps, value=settings.default_steps, step=1,
                                      label="Fine-tuning steps", info="0 = feed-forward (fastest); steps train the "
                                      "learned generator, used only when it is on (Advanced)")
                    render_options, seed, generator = advanced_options(app.output_height_choices)
                    generate = gr.Button("Generate", variant="primary", elem_id="gen-btn")
                    overlays = gr.Gallery(label="Your shots with the landmarks found (a clip's: when, and why "
                                          "each was taken)", columns=4, height="auto",
                                          object_fit="contain", elem_id="overlays", interactive=False)
                with gr.Column():
                    result = gr.Video(label="Result", height=VIDEO_HEIGHT, elem_id="result-video", interactive=False)
                    notes = gr.Markdown(label="Notes", elem_id="notes")
                    avatar_out = gr.File(label="Avatar", elem_id="avatar-file", interactive=False)
                    gr.Markdown("Keep the avatar file to animate this person again later without fine-tuning "
                                "(*Animate a saved avatar*, below).")
            gr.Examples([[PERSON, DRIVER], [[ASTRONAUT], DRIVER]], inputs=[photos, driver],
                        label="Examples: click one, then Generate", cache_examples=False)
            with gr.Accordion("Animate a saved avatar (no fine-tuning)", open=False):
                avatar_in = gr.File(label="Avatar file (.safetensors) saved by this app", file_types=[".safetensors"],
                                    elem_id="avatar-in")
                animate = gr.Button("Animate saved avatar with the driving video above", elem_id="animate-btn")
        cmp = compare_tab(settings, limits.max_shots)
        build_live_tab(app, avatar_out, live)
        build_speak_tab(app)
        gr.Markdown(INTENDED_USE)

        checked_by_the_app(steps, seed, cmp.steps, clip_shots, face, cmp.face)
        short_refusals(photos, clip, driver, avatar_in, cmp.photos, cmp.clip, cmp.driver, render_options.retarget,
                       render_options.output_size, render_options.mark_position)
        # One queue for every job (TALKING_HEAD_CONCURRENCY at once, whichever the button); a job stops between
        # steps once its visitor cancels or leaves, and keeps its slot until it has (talking_head_app/jobs.py).
        job = one_queue(settings.concurrency)
        show_clip_shots(app, clip, clip_shots, [overlays, notes], job)
        pick_faces(app, photos, faces, face, job)
        generate.click(stoppable(app.generate), [photos, driver, steps, *render_options, seed, generator, clip,
                                                 clip_shots, face],
                       [overlays, result, avatar_out, notes], api_name="generate", **job)
        animate.click(stoppable(app.animate_avatar), [avatar_in, driver, *render_options, generator], [result, notes],
                      api_name="animate_avatar", **job)
        wire_compare(app, cmp, job)
    app.folders.sweep_every(settings.sweep_seconds)  # with no traffic, old folders still go on time
    return demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)


def wire_compare(app: TalkingHeadApp, cmp: CompareTab, job: dict) -> None:
    """The Compare shots tab's events: its own face picker (the API's /find_faces is the Animate tab's), its button."""
    pick_faces(app, cmp.photos, cmp.faces, cmp.face, job, api_name=False)
    cmp.button.click(stoppable(app.compare), [cmp.photos, cmp.driver, cmp.ks, cmp.steps, cmp.generator, cmp.clip,
                                              cmp.face], [cmp.video, cmp.table], api_name="compare", **job)


def show_clip_shots(app: TalkingHeadApp, clip: gr.Video, clip_shots: gr.Slider, outputs: list, job: dict) -> None:
    """A clip's shots are shown as soon as it arrives (or the number of shots changes), before any rendering."""
    preview = {"fn": stoppable(app.preview_clip), "inputs": [clip, clip_shots], "outputs": outputs,
               "trigger_mode": "always_last", **job}
    clip.change(api_name="preview_clip", **preview)
    clip_shots.release(api_name=False, **preview)


def face_picker(prefix: str = "") -> tuple[gr.Gallery, gr.Number]:
    """Where a photo holds several faces: the faces found, numbered by size, and the number of the one to use;
    hidden until a photo holds several (:func:`show_face_picker`). ``prefix``: of the elements' ids, one per tab."""
    faces = gr.Gallery(label="Faces found where a photo holds several (numbered by size)", columns=6, height="auto",
                       object_fit="contain", elem_id=f"{prefix}faces", interactive=False, visible=False)
    face = gr.Number(1, precision=0, minimum=1, label="Face to use (by size: 1 = the largest)",
                     elem_id=f"{prefix}face", visible=False)
    return faces, face


def pick_faces(app: TalkingHeadApp, photos: gr.File, faces: gr.Gallery, face: gr.Number, job: dict,
               api_name: str | bool = "find_faces") -> None:
    """The faces of a photo holding several are shown as soon as the photos arrive, and the picker with them (one
    API endpoint serves every tab: ``api_name`` False for the others)."""
    photos.change(stoppable(app.find_faces), [photos], [faces], api_name=api_name, trigger_mode="always_last",
                  **job).then(show_face_picker, [faces], [faces, face], api_visibility="private", concurrency_limit=None)


def show_face_picker(found: list | None) -> tuple[dict, dict]:
    """The face picker shown only while a photo holds several faces (``found``: the faces' gallery); hidden, its
    number goes back to 1, the largest, as a number left from other photos would refuse a photo with fewer."""
    several = bool(found)
    return gr.update(visible=several), gr.update(visible=True) if several else gr.update(visible=False, value=1)


def clip_shots_slider(max_shots: int) -> gr.Slider:
    """How many frames a clip gives; its default is the library's (``ClipShotsConfig``, written once)."""
    return gr.Slider(1, max_shots, value=ClipShotsConfig().shots, step=1, label="Shots from the clip",
                     info="frames taken from it, chosen to cover your head's turns and your mouth's shapes",
                     elem_id="clip-shots")


class RenderOptions(NamedTuple):
    """The Advanced accordion's render options, in the order the handlers take them."""

    retarget: gr.Radio
    paste_back: gr.Checkbox
    side_by_side: gr.Checkbox
    output_size: gr.Dropdown
    mark_position: gr.Dropdown


def advanced_options(output_sizes: list[tuple[str, str | int]]) -> tuple[RenderOptions, gr.Number, gr.Checkbox]:
    """The Animate tab's Advanced accordion: the render options, the seed and the learned generator's switch."""
    with gr.Accordion("Advanced", open=False):
        retarget = gr.Radio(list(RETARGET_MODES), value=RenderConfig.retarget, label="Motion transfer",
                            info="relative: the driver's motion on your face's shape; absolute: the "
                            "driver's landmarks as they are (the paper)")
        paste_back = gr.Checkbox(RenderConfig.paste_back, label="Paste the face back into the first photo")
        side_by_side = gr.Checkbox(RenderConfig.side_by_side, label="Side by side: driver | photo | result")
        output_size = gr.Dropdown(output_sizes, value=AUTO_OUTPUT_SIZE,
                                  label="Output height (pixels)")
        mark_position = gr.Dropdown(list(POSITIONS), value=RenderConfig.mark_position,
                                    label="Corner of the 'synthetic' mark (always shown)")
        seed = gr.Number(0, precision=0, label="Seed (order of the photos during fine-tuning)")
        generator = gr.Checkbox(RenderConfig.generator, label="Learned generator inside the mouth",
                                info=GENERATOR_INFO, elem_id="generator")
    return RenderOptions(retarget, paste_back, side_by_side, output_size, mark_position), seed, generator


class CompareTab(NamedTuple):
    """The Compare shots tab's inputs, its button and its outputs."""

    photos: gr.File
    clip: gr.Video
    driver: gr.Video
    ks: gr.Textbox
    steps: gr.Slider
    generator: gr.Checkbox
    button: gr.Button
    video: gr.Video
    table: gr.Markdown
    faces: gr.Gallery
    face: gr.Number


def compare_tab(settings: AppSettings, max_shots: int) -> CompareTab:
    """The Compare shots tab: the same photos personalised with the first K of them for each K, side by side."""
    with gr.Tab("Compare shots"):
        gr.Markdown("How many photos (K) does it take? The same photos, personalised with the first K of them "
                    "for each K, driven by one video: one labelled column per K, and how well each K redraws "
                    "the photos it did not see. Or from **one clip of yourself**: each K's shots chosen from its "
                    "first half, measured on its second half's frames as the truth.")
        with gr.Row():
            cmp_photos = gr.File(label=f"Photos of one person (up to {max_shots})", file_count="multiple",
                                 file_types=["image"], elem_id="cmp-photos")
            cmp_clip = gr.Video(label=CLIP_LABEL, sources=["upload", "webcam"], format=VIDEO_FORMAT,
                                height=CLIP_HEIGHT, elem_id="cmp-clip")
            cmp_driver = gr.Video(label="Driving video (with a clip, none: the clip drives itself)",
                                  sources=["upload", "webcam"], format=VIDEO_FORMAT, elem_id="cmp-driver")
        faces, face = face_picker("cmp-")
        with gr.Row(equal_height=True):
            ks = gr.Textbox(ks_text(), label="K values", info="comma-separated; capped at the number of "
                            "photos given, or of shots the clip's first half gives")
            cmp_steps = gr.Slider(0, settings.max_steps, value=settings.default_steps, step=1,
                                  label="Fine-tuning steps per K")
            cmp_generator = gr.Checkbox(RenderConfig.generator, label="Learned generator inside the mouth",
                                        info=GENERATOR_INFO)
            compare = gr.Button("Compare", variant="primary", elem_id="cmp-btn")
        cmp_video = gr.Video(label="Comparison", elem_id="cmp-video", interactive=False)
        cmp_table = gr.Markdown(label="Metrics", elem_id="cmp-table")
        gr.Examples([[PERSON, DRIVER, "1, 2, 3"]], inputs=[cmp_photos, cmp_driver, ks], cache_examples=False)
    return CompareTab(cmp_photos, cmp_clip, cmp_driver, ks, cmp_steps, cmp_generator, compare, cmp_video, cmp_table,
                      faces, face)


def launch_options(settings: AppSettings) -> dict[str, Any]:
    """What ``demo.launch`` needs to enforce ``settings``: Gradio refuses an upload over the size limit
    before storing it."""
    return {"max_file_size": settings.max_upload_mb * 1024 * 1024}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = AppSettings.from_env()
    app = TalkingHeadApp.from_pretrained(settings)
    live = LiveHandlers(app)
    # the example avatar (a few seconds of CPU, once) before the first visitor asks for it
    threading.Thread(target=live.example_avatar, name="make-example-avatar", daemon=True).start()
    demo = build_demo(app, live)
    # port: GRADIO_SERVER_PORT or 7860
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), **launch_options(settings))


if __name__ == "__main__":
    main()
