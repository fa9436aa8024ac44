"""The app's *Speak* tab's handler: a photo and a voice file or a text -> the mp4 and notes; a visitor's mistakes
end in a message they can act on (the browser test, test_app_speak_browser.py, clicks through the tab)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from app_support import RecordingProgress, visitor
from gradio_client import handle_file
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos
from speech_support import needs_espeak, syllables, write_wav

from talking_head_app.handlers import TalkingHeadApp
from talking_head_app.speak_tab import SpeakHandlers


@pytest.fixture(scope="module")
def handlers(tiny_app: TalkingHeadApp) -> SpeakHandlers:
    return SpeakHandlers(tiny_app)


def test_a_recorded_voice_comes_back_as_a_video_with_it(handlers: SpeakHandlers, synthetic_photos: list[Path],
                                                         tmp_path: Path) -> None:
    voice = write_wav(tmp_path / "recording.wav", syllables(3)[0])
    progress = RecordingProgress()
    video, notes = handlers.speak([str(synthetic_photos[0])], str(voice), "", progress=progress)
    assert ffmpeg_parse_infos(video)["audio_found"] and "30 frames at 25 fps" in notes
    assert any("rendering" in text for _, text in progress.updates)


@needs_espeak
def test_typed_text_in_another_voice(handlers: SpeakHandlers, synthetic_photos: list[Path]) -> None:
    video, _ = handlers.speak([str(synthetic_photos[0])], None, "Bonjour.", "fr", 3, progress=RecordingProgress())
    assert 0.3 < ffmpeg_parse_infos(video)["duration"] < 3


def test_a_visitors_mistakes_get_a_clear_message(handlers: SpeakHandlers, synthetic_photos: list[Path],
                                                 tmp_path: Path) -> None:
    photo, voice = [str(synthetic_photos[0])], str(write_wav(tmp_path / "v.wav", syllables(1)[0]))
    for arguments, message in ((([], voice, ""), "at least one photo"), ((photo, None, "  "), "record or upload"),
                               ((photo, voice, "hello"), "not both"),
                               ((photo, None, "hello", "klingon"), "choose a voice among")):
        with pytest.raises(gr.Error, match=message):
            handlers.speak(*arguments, progress=RecordingProgress())


@needs_espeak
def test_the_speak_endpoint_as_docs_api_shows_it(server: str, synthetic_photos: list[Path], tmp_path: Path) -> None:
    video, notes = visitor(server, tmp_path).predict([handle_file(synthetic_photos[0])], None, "Hello.", "en-us", 0,
                                                     api_name="/speak")
    assert ffmpeg_parse_infos(video)["audio_found"]  # the mp4, downloaded
    assert "fps" in notes
