"""Typed text -> speech, with the time of every phone: espeak-ng, the system's library, called in process.

espeak-ng (Debian/Ubuntu: ``apt-get install espeak-ng``; it ships its voices, nothing is downloaded) reports
each phone as it synthesises it (``espeakEVENT_PHONEME``, at its sample), so the lips close on the b of the
very speech that is heard. Its command line prints phone timings only through an MBROLA voice (``--pho``),
which Debian does not ship: hence the library, through ctypes. The library keeps global state, so calls are
serialised by a lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import wave
from pathlib import Path

import numpy as np

from talking_head.errors import InputError
from talking_head.speech.visemes import Phone

#: The longest text spoken at once (characters): about two minutes of speech, beyond any video's limit.
MAX_TEXT_CHARACTERS = 2000
DEFAULT_VOICE = "en-us"
INSTALL_HINT = "typed text is spoken by espeak-ng, which is not installed here (Debian/Ubuntu: apt-get install " \
               "espeak-ng); or give a recording of the voice instead"

# speak_lib.h: event types, output mode, options, position type.
_EVENT_END_OF_LIST, _EVENT_PHONEME = 0, 7
_SYNCHRONOUS, _PHONEME_EVENTS, _DONT_EXIT, _POSITION_CHARACTER = 2, 0x0001, 0x8000, 1


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Espeak:
    """The library, initialised once per process; ``synthesize`` collects one utterance's samples and phones."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as error:
            raise InputError(INSTALL_HINT) from error
        self.rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS | _DONT_EXIT)
        if self.rate <= 0:
            raise InputError(f"espeak-ng could not start (its data is missing?): {INSTALL_HINT}")
        self.samples: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []  # (sample, phone)
        self.callback = _Callback(self._collect)  # kept: the library calls it for as long as the process lives
        self.lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: ctypes.Array, count: int, events: ctypes.Array) -> int:
        if count > 0:
            self.samples.append(np.ctypeslib.as_array(wav, (count,)).copy())
        index = 0
        while events[index].type != _EVENT_END_OF_LIST:
            if events[index].type == _EVENT_PHONEME:
                self.events.append((events[index].sample, bytes(events[index].id).split(b"\0")[0].decode()))
            index += 1
        return 0

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """int16 samples at ``rate`` and the (sample, phone) where each phone starts."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"espeak-ng has no voice {voice!r} (try en-us, en, de, fr, es; `espeak-ng --voices` "
                             f"lists them)")
        self.samples, self.events = [], []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, _POSITION_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        samples = np.concatenate(self.samples) if self.samples else np.zeros(0, np.int16)
        return samples, self.events


_lock = threading.Lock()
_engine: _Espeak | None = None


def speak_text(text: str, wav_path: str | Path, voice: str = DEFAULT_VOICE) -> list[Phone]:
    """Speak ``text`` into the WAV file ``wav_path``; the phones said, with their times (pauses left out)."""
    global _engine
    text = " ".join(text.split())
    if not text:
        raise InputError("type something to say")
    if len(text) > MAX_TEXT_CHARACTERS:
        raise InputError(f"the text is {len(text)} characters long; at most {MAX_TEXT_CHARACTERS} are spoken at once")
    with _lock:
        _engine = _engine or _Espeak()
        samples, events = _engine.synthesize(text, voice)
        rate = _engine.rate
    if not len(samples):
        raise InputError("espeak-ng said nothing for this text: write it in words of the voice's language")
    with wave.open(str(wav_path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    ends = [sample for sample, _ in events[1:]] + [len(samples)]
    return [Phone(name, start / rate, end / rate) for (start, name), end in zip(events, ends)
            if not name.startswith("_")]
