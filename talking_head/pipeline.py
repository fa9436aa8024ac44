"""``TalkingHeadPipeline``: photos -> landmarks -> embedding -> fine-tuning -> driven video.

Reads top to bottom as the data flows::

    pipe = TalkingHeadPipeline.from_pretrained()             # the default Hub repo, else the bundled checkpoint
    avatar = pipe.personalize(["me1.jpg", "me2.jpg"])     # FinetuneConfig's steps
    avatar.save("me.avatar.safetensors")                      # come back later without fine-tuning
    pipe.animate(avatar, "driver.mp4", "out.mp4")

No UI code here: the Gradio app and the CLI call these methods.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from talking_head.avatar import MAX_PASTE_PHOTO_SIDE, Avatar
from talking_head.clip_shots import ClipShots, ClipShotsConfig, choose_shots, is_video
from talking_head.config import PAPER_KS
from talking_head.device import pick_device
from talking_head.errors import InputError
from talking_head.face_render import render_faces
from talking_head.finetune import FinetuneConfig, personalize
from talking_head.hub import LoadedModel, load_model
from talking_head.landmarks.align import CropBox, crop_box, crop_face
from talking_head.landmarks.detect import FaceDetection, LandmarkDetector, NoFaceError, detect_face, get_detector
from talking_head.landmarks.rasterize import overlay_landmarks
from talking_head.limits import Limits
from talking_head.markdown_text import escape_markdown
from talking_head.media import load_photo
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.mouth_finetune import personal_mouth
from talking_head.render import (
    DrivingVideo,
    Progress,
    RenderConfig,
    RenderResult,
    check_driver,
    photo_window,
    render_driven_video,
)
from talking_head.shot_bank import BANK_IMAGE_SIZE, bank_box
from talking_head.speech.liveliness import LivelinessConfig
from talking_head.speech.speak import SpeechResult, speak
from talking_head.speech.tts import DEFAULT_VOICE
from talking_head.tensors import to_network

logger = logging.getLogger(__name__)

PhotoInput = str | Path | np.ndarray | Image.Image | ClipShots  # ClipShots: a clip's shots, chosen


@dataclass
class Shots:
    """K photos prepared for the networks: face crops and their landmarks (crop pixels)."""

    crops: np.ndarray  # (K, S, S, 3) uint8
    landmarks: np.ndarray  # (K, 68, 2) float32
    photo: np.ndarray  # the first photo (downscaled for paste-back)
    photo_box: CropBox  # the first crop's box in ``photo``
    notes: list[str]  # what the user should know (several faces in a photo, ...)
    bank_crops: np.ndarray  # (K, BANK_IMAGE_SIZE, BANK_IMAGE_SIZE, 3) uint8: the crops with a margin, sampled once
    bank_landmarks: np.ndarray  # (K, 68, 2) float32, in bank pixels


class TalkingHeadPipeline:
    def __init__(self, model: TalkingHeadModel, weights: str = "given", device: str | torch.device = "auto",
                 landmark_backend: str = "auto", limits: Limits | None = None) -> None:
        """``limits``: what this pipeline accepts (default :meth:`Limits.from_env`, read now)."""
        self.device = pick_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        self.weights = weights
        self.landmark_backend = landmark_backend
        self.limits = limits or Limits.from_env()

    @classmethod
    def from_pretrained(cls, source: str | Path | None = None, revision: str | None = None, device: str = "auto",
                        landmark_backend: str = "auto", limits: Limits | None = None) -> "TalkingHeadPipeline":
        """Load weights: ``source`` (a folder or Hub repo id, an error if it cannot be loaded), or by default
        the Hub repo ``TALKING_HEAD_REPO``, else the bundled checkpoint (:func:`talking_head.hub.load_model`).

        ``weights`` says which were used by origin and name only: it is shown to an app's visitors and
        stored in every avatar, where a path of this machine has no business.
        """
        loaded: LoadedModel = load_model(source, revision)
        logger.info("weights: %s (%s)", loaded.location, loaded.origin)
        return cls(loaded.model, loaded.label, device, landmark_backend, limits)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def detector(self) -> LandmarkDetector:
        return get_detector(self.landmark_backend)  # cached per process

    # -- checks a caller can make before any model work ----------------------------------------------
    def check_photos(self, photos: Sequence[PhotoInput]) -> None:
        """An :class:`InputError` unless there are 1 to ``limits.max_shots`` photos (they are not opened)."""
        if not photos:
            raise InputError("upload at least one photo of a face")
        if len(photos) > self.limits.max_shots:
            raise InputError(f"{len(photos)} photos given; at most {self.limits.max_shots} can be used")

    def check_driver(self, driver: str | Path, config: RenderConfig = RenderConfig()) -> DrivingVideo:
        """``driver`` as :meth:`animate` would render it with ``config`` (its frame count), or an
        :class:`InputError` saying why it cannot be (:func:`talking_head.render.check_driver`)."""
        return check_driver(driver, config, self.limits)

    # -- 1. photos -> landmarks -> crops -------------------------------------------------------------
    def prepare_shots(self, photos: Sequence[PhotoInput], progress: Progress | None = None, face: int = 1,
                      shots: int | None = None) -> Shots:
        """Find the face in each photo (``face``: which one where a photo holds several, by size, 1 = the
        largest) and crop it; a video file among them (:func:`~talking_head.clip_shots.is_video`) gives
        ``shots`` frames (default ``ClipShotsConfig``'s) chosen to cover its head poses and mouth shapes
        (:func:`~talking_head.clip_shots.choose_shots`). ``notes`` say how many faces a photo held, when a
        face was small, and which times of a clip were taken and why."""
        self.check_photos(photos)
        if face < 1:
            raise InputError(f"face must be 1 or more (faces are numbered by size, 1 = the largest), got {face}")
        clip_config = ClipShotsConfig() if shots is None else ClipShotsConfig(shots=shots)
        crops, landmarks, bank_crops, bank_landmarks, notes = [], [], [], [], []
        first: tuple[np.ndarray, CropBox] | None = None
        for index, source in enumerate(photos):
            for image, found, shot_notes in self._faces_in(source, index, face, clip_config):
                notes.extend(shot_notes)
                crop, crop_landmarks = crop_face(image, found.landmarks, self.image_size)
                bank_crop, bank_points = crop_face(image, found.landmarks, BANK_IMAGE_SIZE,
                                                   bank_box(crop_box(found.landmarks)))
                bank_crops.append(bank_crop)
                bank_landmarks.append(bank_points)
                crops.append(crop)
                landmarks.append(crop_landmarks)
                if first is None:
                    first = _paste_photo(image, found.landmarks)
            if len(crops) > self.limits.max_shots:
                raise InputError(f"{len(crops)} shots from the photos and clips given; at most {self.limits.max_shots} "
                                 f"can be used (fewer photos, or a smaller --shots)")
            if progress:
                progress((index + 1) / len(photos), "finding faces")
        assert first is not None
        points = np.stack(landmarks).astype(np.float32)
        return Shots(np.stack(crops), points, first[0], first[1], notes, np.stack(bank_crops),
                     np.stack(bank_landmarks).astype(np.float32))

    def _faces_in(self, source: PhotoInput, index: int, face: int, clip_config: ClipShotsConfig
                  ) -> list[tuple[np.ndarray, FaceDetection, list[str]]]:
        """(image, face, notes) for each shot ``source`` gives: a photo one, a clip ``clip_config.shots`` (a clip's
        shots already chosen, :class:`~talking_head.clip_shots.ClipShots`, all of them)."""
        if isinstance(source, ClipShots) or is_video(source):
            clip = source if isinstance(source, ClipShots) else choose_shots(source, self.detector, clip_config,
                                                                             self.limits)
            first = clip.shots[0]
            notes = [clip.describe(), *clip.notes, *face_notes(clip.name, first.face, 1, self.image_size)]
            return [(shot.frame, shot.face, notes if shot is first else []) for shot in clip.shots]
        name = Path(source).name if isinstance(source, (str, Path)) else f"photo {index + 1}"
        image = load_photo(source)
        try:
            found = detect_face(image, self.detector, face)
        except NoFaceError as error:
            raise NoFaceError.in_photo(name) from error
        except InputError as error:
            raise InputError(f"{name}: {error}") from None
        return [(image, found, face_notes(name, found, face, self.image_size))]

    def faces_in_photo(self, photo: PhotoInput, side: int) -> list[np.ndarray]:
        """Each face of ``photo`` as a ``side`` px crop, largest first: numbered as ``face=N`` numbers them, so a
        person can see which number is whom before choosing (the app's face picker)."""
        image = load_photo(photo)
        return [crop_face(image, found.landmarks, side)[0] for found in self.detector.detect(image)]

    @staticmethod
    def landmark_overlays(shots: Shots, side: int | None = None) -> list[np.ndarray]:
        """Each face crop (resized to ``side``, default its own) with the landmarks found on it drawn on top,
        so that a person sees at once when a photo's face was found badly."""
        overlays = []
        for crop, landmarks in zip(shots.crops, shots.landmarks):
            size = side or crop.shape[0]
            photo = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC) if size != crop.shape[0] else crop
            overlays.append(overlay_landmarks(photo, [landmarks * (size / crop.shape[0])]))
        return overlays

    # -- 2. embedding + fine-tuning -----------------------------------------------------------------
    def personalize(self, photos: Sequence[PhotoInput] | Shots, steps: int | None = None,
                    progress: Progress | None = None, finetune: FinetuneConfig | None = None,
                    face: int = 1, shots: int | None = None) -> Avatar:
        """Embed the K photos (the mean of E) and fine-tune them in (0 steps: feed-forward); ``face`` picks the
        face where a photo holds several, ``shots`` how many frames a clip gives (:meth:`prepare_shots`).

        ``finetune`` (default ``FinetuneConfig()``) is followed as given, with two shorthands: ``steps``, when
        not None, replaces its ``steps``; its ``device`` ``auto`` means the pipeline's device. The options
        used are stored in the avatar's ``info["finetune"]``, so an avatar can be reproduced from its file.
        """
        began = time.monotonic()
        shots = photos if isinstance(photos, Shots) else self.prepare_shots(photos, face=face, shots=shots)
        config = self._finetune_config(finetune or FinetuneConfig(), steps)
        frames, drawings = to_network(shots.crops, shots.landmarks, self.image_size)
        step_progress = (lambda step, total, _: progress(step / total, f"fine-tuning step {step}/{total}")
                         ) if progress else None
        face_config = config if config.networks != "mouth" else replace(config, steps=0)
        generator = personalize(self.model, frames, drawings, torch.from_numpy(shots.landmarks), face_config,
                                step_progress)
        info = {"k": len(shots.crops), "steps": config.steps, "weights": self.weights, "notes": shots.notes,
                "seconds": round(time.monotonic() - began, 2), "device": config.device,
                "finetune": _shareable(config)}
        bank = (shots.bank_crops, shots.bank_landmarks) if self.model.config.texture_path else (None, None)
        mouth_steps = config.steps if config.networks != "face" else 0
        mouth = (personal_mouth(self.model.mouth, generator.embedding, *bank, mouth_steps, config.seed)
                 if self.model.mouth is not None and bank[0] is not None else None)
        info["seconds"] = round(time.monotonic() - began, 2)
        return Avatar(generator, shots.crops[0], shots.landmarks[0], shots.photo, shots.photo_box, info, *bank, mouth)

    def _finetune_config(self, config: FinetuneConfig, steps: int | None) -> FinetuneConfig:
        """``config`` with the ``steps`` shorthand applied and ``auto`` resolved to the pipeline's device."""
        device = str(self.device) if config.device == "auto" else config.device
        return replace(config, steps=config.steps if steps is None else steps, device=device)

    # -- 3. driving -----------------------------------------------------------------------------------
    def animate(self, avatar: Avatar, driver: str | Path, out_path: str | Path,
                config: RenderConfig = RenderConfig(), progress: Progress | None = None) -> RenderResult:
        """Render ``avatar`` driven by the video ``driver`` into the mp4 ``out_path`` (driver's audio kept),
        on the pipeline's device; the caller's avatar stays where it is."""
        return render_driven_video([self._on_device(avatar)], driver, out_path, self.detector, config,
                                   progress=progress, limits=self.limits)

    def speak(self, avatar: Avatar, out_path: str | Path, audio: str | Path | None = None, text: str | None = None,
              config: RenderConfig = RenderConfig(), lively: LivelinessConfig = LivelinessConfig(),
              voice: str = DEFAULT_VOICE, progress: Progress | None = None) -> SpeechResult:
        """Render ``avatar`` saying ``audio`` (a sound file) or ``text`` (spoken by espeak-ng in ``voice``) into the
        mp4 ``out_path``, the voice muxed in (:func:`talking_head.speech.speak.speak`)."""
        return speak(self._on_device(avatar), out_path, audio, text, config, lively, voice, self.limits, progress)

    def _on_device(self, avatar: Avatar) -> Avatar:
        """``avatar`` itself when it is on the pipeline's device, else a copy there."""
        if _same_device(avatar.generator.psi.device, self.device):
            return avatar
        mouth = copy.deepcopy(avatar.mouth).to(self.device) if avatar.mouth is not None else None
        return replace(avatar, generator=copy.deepcopy(avatar.generator).to(self.device), mouth=mouth)

    # -- 4. K = 1 / 8 / 32 side by side -------------------------------------------------------------
    def compare(self, photos: Sequence[PhotoInput], driver: str | Path, out_path: str | Path,
                ks: Sequence[int] = PAPER_KS, steps: int | None = None, config: RenderConfig = RenderConfig(),
                progress: Progress | None = None, finetune: FinetuneConfig | None = None, face: int = 1,
                shots: int | None = None) -> Comparison:
        """Personalise once per K on the first K photos (``steps`` and ``finetune`` as in :meth:`personalize`),
        drive them all with one video (a labelled column each), and measure each K on the photos it did not
        see (or on its shots when all were used); ``face`` and ``shots`` as in :meth:`prepare_shots` (a clip's
        shots come most telling first, so each K takes the best K of them)."""
        prepared = self.prepare_shots(photos, face=face, shots=shots)
        available = len(prepared.crops)
        chosen = sorted({min(k, available) for k in ks if k >= 1})
        if not chosen:
            raise InputError("choose at least one K of 1 or more")
        avatars, rows = [], []
        for index, k in enumerate(chosen):
            stage = _subrange(progress, index / (len(chosen) + 1), (index + 1) / (len(chosen) + 1), f"K={k}: ")
            avatar = self.personalize(_first_shots(prepared, k), steps, stage, finetune)
            avatars.append(avatar)
            rows.append({"K": k, "steps": avatar.info["steps"], "seconds": avatar.info["seconds"],
                         **self._score(avatar, prepared, k, config)})
        render = render_driven_video(avatars, driver, out_path, self.detector, config,
                                     labels=[f"K={k}" for k in chosen],
                                     progress=_subrange(progress, len(chosen) / (len(chosen) + 1), 1.0, ""),
                                     limits=self.limits)
        notes = [f"only {available} shots given: K capped at {available}"] if max(ks) > available else []
        notes += prepared.notes
        return Comparison(render.path, comparison_table(rows, notes), rows, render)

    def _score(self, avatar: Avatar, shots: Shots, k: int, config: RenderConfig) -> dict[str, float | str]:
        """SSIM / PSNR / CSIM of the avatar re-drawing photos it was not given (its shots if none are left), as the
        video draws them (with or without the learned generators ``config`` names)."""
        from talking_head import metrics  # dlib's face-recognition network loads on first use

        held_out = list(range(k, len(shots.crops))) or list(range(k))
        real, landmarks = shots.crops[held_out], shots.landmarks[held_out]
        generated = render_faces(avatar, landmarks, self.image_size, generator=config.generator, mouth=config.mouth)
        scores = {name: float(np.mean([fn(g, r) for g, r in zip(generated, real)]))
                  for name, fn in (("SSIM", metrics.ssim), ("PSNR", metrics.psnr))}
        scores["CSIM"] = float(np.mean([metrics.csim(g, r, lm) for g, r, lm in zip(generated, real, landmarks)]))
        scores["measured on"] = f"{len(held_out)} unseen photos" if k < len(shots.crops) else "its own shots"
        return scores


@dataclass(frozen=True)
class Comparison:
    path: Path  # the side-by-side mp4: driver | K=1 | K=8 | ...
    table: str  # markdown
    rows: list[dict[str, float | str]]
    render: RenderResult


def comparison_table(rows: list[dict[str, float | str]], notes: list[str]) -> str:
    header = (
        "| K | fine-tuning steps | seconds | SSIM ↑ | PSNR ↑ | CSIM ↑ | measured on |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    body = "".join(f"| {r['K']} | {r['steps']} | {r['seconds']:.1f} | {r['SSIM']:.3f} | {r['PSNR']:.2f} | "
                   f"{r['CSIM']:.3f} | {r['measured on']} |\n" for r in rows)
    return header + body + "".join(f"\n_{escape_markdown(note)}_\n" for note in notes)  # a note names a photo


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are one device (a tensor always reports the index, a user rarely gives it)."""
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def _shareable(config: FinetuneConfig) -> dict[str, object]:
    """The fine-tuning options as stored in an avatar: VGG weights by file name (an avatar is shared, a
    path of this machine is not)."""
    options = asdict(config)
    for key in ("vgg19", "vggface"):
        options[key] = options[key] and Path(options[key]).name
    return options


def _first_shots(shots: Shots, k: int) -> Shots:
    return replace(shots, crops=shots.crops[:k], landmarks=shots.landmarks[:k], bank_crops=shots.bank_crops[:k],
                   bank_landmarks=shots.bank_landmarks[:k])


def _subrange(progress: Progress | None, start: float, end: float, prefix: str) -> Progress | None:
    """Map a stage's own 0..1 progress onto [start, end] of the whole job."""
    if progress is None:
        return None
    return lambda fraction, text: progress(start + (end - start) * fraction, prefix + text)


def face_notes(name: str, face: FaceDetection, number: int, image_size: int) -> list[str]:
    """What a person should know about the face used in photo ``name``: which of several it was, and whether
    it was smaller than the model's crop (enlarged, so the result is soft for that reason, not the model's)."""
    notes = []
    if face.num_faces > 1:
        which = "the largest" if number == 1 else f"number {number} by size"
        notes.append(f"{name}: {face.num_faces} faces found; face {number} ({which}, {face.width:.0f} px across) is "
                     f"used (choose another by its number by size: --face N; in the app, Face to use)")
    side = crop_box(face.landmarks)[2]
    if side < image_size:
        notes.append(f"{name}: small face ({face.width:.0f} px across), enlarged {image_size / side:.1f}x to the "
                     f"model's {image_size} px: the result will look soft (a larger face gives a sharper one)")
    return notes


def _paste_photo(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, CropBox]:
    """The first photo as the avatar keeps it for pasting back: at its own resolution, cut around the face to
    ``MAX_PASTE_PHOTO_SIDE`` (:func:`~talking_head.render.photo_window`), with its crop box to match."""
    return photo_window(image, crop_box(landmarks), MAX_PASTE_PHOTO_SIDE)
