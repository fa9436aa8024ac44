"""A photo's avatar and a voice (a file, or typed text) -> an mp4 of the avatar saying it, the voice muxed in.

The voice is read into per-frame tracks first (tens of numbers a second: ``tracks``, ``liveliness``); the
frames are then made and encoded as a stream, a batch at a time, the driving path's retarget, warp and
layout on a thread of their own (``stages.ThreadedStage``): memory is flat in the voice's length.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.landmarks.align import Retargeter
from talking_head.landmarks.rasterize import draw_landmarks
from talking_head.limits import Limits
from talking_head.media import VideoSink
from talking_head.render import (
    QUEUE_BATCHES,
    AvatarColumn,
    FrameLayout,
    Progress,
    RenderConfig,
    RenderResult,
    check_output_size,
)
from talking_head.speech.audio import iter_audio, probe_audio
from talking_head.speech.driver import driver_frame
from talking_head.speech.features import VoiceFeatures, voice_features
from talking_head.speech.liveliness import HeadTracks, LivelinessConfig, head_tracks
from talking_head.speech.tracks import WIDEST_OPENING, MouthTracks, voice_tracks
from talking_head.speech.tts import DEFAULT_VOICE, speak_text
from talking_head.speech.visemes import with_phones
from talking_head.stages import ThreadedStage

#: Speech shuts the mouth between syllables (espeak-ng English: 7-11 times a second it is open); music and
#: noise seldom fall silent in the lips' band.
SPEECH_CLOSURES_PER_SECOND = 1.0


@dataclass(frozen=True)
class SpeechResult:
    render: RenderResult
    notes: list[str]  # what the person should know about their voice (silent, not speech-like, trimmed)


@dataclass(frozen=True)
class Voice:
    """A voice read into tracks: the sound file to mux, the mouth's motion and the loudness per frame."""

    path: Path
    mouth: MouthTracks
    features: VoiceFeatures
    notes: list[str]


def longest_seconds(config: RenderConfig, limits: Limits) -> float:
    return limits.max_video_seconds if config.max_seconds is None else config.max_seconds


def read_voice(audio: str | Path, config: RenderConfig, limits: Limits, what: str = "the audio") -> Voice:
    """The voice in ``audio``, checked (:func:`audio.probe_audio`) and cut or refused past the length limit (the
    refusal calls it ``what``)."""
    info, longest = probe_audio(audio), longest_seconds(config, limits)
    shorten = "Shorten it, or ask for it to be trimmed."
    if info.duration > longest + 0.5 and not config.trim:
        raise InputError(f"{what} is {info.duration:.1f} s long; the limit is {longest:g} s. {shorten}")
    features = voice_features(iter_audio(audio, longest + 1.0))  # a second over: enough to tell it is too long
    if features.seconds > longest + 0.5 and not config.trim:  # the container understated it
        raise InputError(f"{what} is over the limit of {longest:g} s. {shorten}")
    notes = [f"{Path(audio).name}: a video's sound track is used"] if info.has_video else []
    if features.seconds > longest + 0.5:
        notes.append(f"trimmed to its first {longest:g} s, the limit")
    features = _first_seconds(features, longest)
    mouth = voice_tracks(features)
    return Voice(Path(audio), mouth, features, notes + voice_notes(mouth))


def _first_seconds(features: VoiceFeatures, seconds: float) -> VoiceFeatures:
    frames = int(seconds * features.fps + 1e-6)
    return replace(features, lip_db=features.lip_db[:frames], energy_db=features.energy_db[:frames],
                   tilt_db=features.tilt_db[:frames])


def closures_per_second(mouth: MouthTracks) -> float:
    """How often the mouth shuts (runs of frames under a tenth of the widest opening) per second it is open."""
    shut = mouth.opening < 0.1 * WIDEST_OPENING
    runs = np.count_nonzero(shut[1:] & ~shut[:-1])
    return runs / max(np.count_nonzero(~shut) / mouth.fps, 1e-6)


def voice_notes(mouth: MouthTracks) -> list[str]:
    """What a person should know about a voice that is no voice: silence, or a sound that seldom pauses."""
    if not mouth.opening.any():
        return ["no voice was heard (the sound is silent): the mouth stays closed"]
    if closures_per_second(mouth) < SPEECH_CLOSURES_PER_SECOND:
        return ["the sound seldom pauses, as music or noise does, not speech: the mouth follows its loudness"]
    return []


def speak(avatar: Avatar, out_path: str | Path, audio: str | Path | None = None, text: str | None = None,
          config: RenderConfig = RenderConfig(), lively: LivelinessConfig = LivelinessConfig(),
          voice: str = DEFAULT_VOICE, limits: Limits | None = None, progress: Progress | None = None) -> SpeechResult:
    """``avatar`` saying ``audio`` (a sound file; a video's sound track too) or ``text`` (spoken by espeak-ng in
    ``voice``, its phones closing and rounding the lips), rendered as ``config`` says into ``out_path``."""
    if (audio is None) == (text is None):
        raise InputError("give either a voice recording or a text to say, not both")
    limits = limits or Limits.from_env()
    check_output_size(config, limits)
    with tempfile.TemporaryDirectory(prefix="talking-head-speech-") as folder:
        if text is not None:
            spoken = Path(folder) / "speech.wav"
            phones = speak_text(text, spoken, voice)
            heard = read_voice(spoken, config, limits, "the text, spoken,")
            heard = replace(heard, mouth=with_phones(heard.mouth, phones))
        else:
            heard = read_voice(audio, config, limits)
        head = head_tracks(heard.features.energy_db, heard.features.fps, lively)
        result = render_tracks(avatar, heard.mouth, head, heard.path, out_path, config, limits, progress)
    return SpeechResult(result, heard.notes)


def render_tracks(avatar: Avatar, mouth: MouthTracks, head: HeadTracks, audio: Path, out_path: str | Path,
                  config: RenderConfig, limits: Limits, progress: Progress | None = None) -> RenderResult:
    """The avatar moved by the tracks, frame by frame, into an mp4 with ``audio`` as its sound."""
    began, total = time.monotonic(), len(mouth)
    if total == 0:
        raise InputError("the audio is too short to make a video of")
    side = avatar.image_size
    layout = FrameLayout.plan([avatar], (side, side), config, None, limits)
    reference = avatar.source_landmarks
    column = replace(AvatarColumn.plan(avatar, layout, config, limits, layout.views[0]),
                     retargeter=Retargeter(reference, config.retarget, reference))

    def rendered() -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
        with torch.inference_mode():  # grad mode is per thread
            for start in range(0, total, config.batch_size):
                frames = range(start, min(total, start + config.batch_size))
                driver = [driver_frame(reference, mouth, head, i) for i in frames]
                yield driver, column(driver)

    written = 0
    with (VideoSink(out_path, layout.width, layout.height, mouth.fps, audio_from=audio,
                    audio_seconds=total / mouth.fps) as sink,
          ThreadedStage(rendered(), QUEUE_BATCHES, "speech") as batches):
        for driver, panels in batches:
            for landmarks, panel in zip(driver, panels):
                drawing = draw_landmarks(landmarks, side) if layout.driver_width else None
                sink.write(layout.compose(drawing, [panel]))
                written += 1
            if progress:
                progress(written / total, "rendering")
    return RenderResult(Path(out_path), written, mouth.fps, layout.width, layout.height, True, 0,
                        time.monotonic() - began)
