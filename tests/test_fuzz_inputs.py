"""Randomly damaged uploads (bytes flipped, files cut short, headers changed): every one ends in a
result or an :class:`InputError`, never another exception, and within a time bound (issue 15).

Avatars are of the ``tiny`` size and made without photos, photos and drivers are small, so the
whole module takes seconds; the seeds are fixed, so a failure names a reproducible case.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from app_support import tiny_weights
from avatar_files import tiny_avatar
from PIL import Image
from skimage import data

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.face_render import render_faces
from talking_head.media import iter_video_frames, probe_driver
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import paste_into_photo

AVATARS, PHOTOS, DRIVERS = 200, 60, 60
#: Seconds one damaged file may take to load, decode or be refused (generous: the CPU is shared).
TIME_BOUND = 5.0

Damage = Callable[[bytes, np.random.Generator], bytes]


def flipped(content: bytes, rng: np.random.Generator, start: int = 0, end: int | None = None) -> bytes:
    """1 to 16 random bytes of ``content[start:end]`` replaced by random values."""
    damaged = bytearray(content)
    end = len(content) if end is None else min(end, len(content))
    for index in rng.integers(start, end, rng.integers(1, 17)):
        damaged[index] = rng.integers(0, 256)
    return bytes(damaged)


def truncated(content: bytes, rng: np.random.Generator) -> bytes:
    return content[:rng.integers(0, len(content))]


def header_flipped(size: int) -> Damage:
    return lambda content, rng: flipped(content, rng, 0, size)


def numbers_changed(header_end: int) -> Damage:
    """A safetensors header with one of its numbers (a shape, an offset, a config value) replaced by a
    random one, written back at the same length or not."""
    def damage(content: bytes, rng: np.random.Generator) -> bytes:
        header = content[8:header_end].decode()
        numbers = list(re.finditer(rb"\d+".decode(), header))
        found = numbers[rng.integers(len(numbers))]
        new = str(rng.choice([0, 1, 2, 3, 68, 640, 2048, 10**6, 2**31, 2**63 - 1, rng.integers(0, 10**4)]))
        header = header[:found.start()] + new + header[found.end():]
        encoded = header.encode()
        return len(encoded).to_bytes(8, "little") + encoded + content[header_end:]
    return damage


#: Values a damaged or crafted config or info may hold where a number, text or list belongs.
JUNK = [None, -1, 0, 1.5, True, 2**40, "128", "x" * 1000, [], [1, 2], {}, {"a": [1]}]
#: dtypes of the same item size, so a swap keeps the file readable and only the meaning changes.
SAME_SIZE = [("F32", "I32", "U32"), ("F64", "I64"), ("U8", "I8", "BOOL"), ("F16", "BF16", "I16")]


def header_rewritten(change: Callable[[dict, np.random.Generator], None]) -> Damage:
    """The safetensors header parsed, changed by ``change`` and written back (a well-formed file whose
    content lies: another shape, dtype, name, config or info)."""
    def damage(content: bytes, rng: np.random.Generator) -> bytes:
        end = 8 + int.from_bytes(content[:8], "little")
        header = json.loads(content[8:end])
        change(header, rng)
        encoded = json.dumps(header).encode()
        return len(encoded).to_bytes(8, "little") + encoded + content[end:]
    return damage


def pick(rng: np.random.Generator, items: list) -> object:
    return items[rng.integers(len(items))]


def metadata_junk(header: dict, rng: np.random.Generator) -> None:
    """A config or info field (or the format) set to a junk value, or a new field added."""
    metadata = header["__metadata__"]
    key = str(pick(rng, ["config", "config", "info", "format"]))
    value = json.loads(metadata[key]) if key != "format" else metadata[key]
    if isinstance(value, dict):
        value[str(pick(rng, [*value, "extra"]))] = pick(rng, JUNK)
    else:
        value = pick(rng, JUNK)
    metadata[key] = json.dumps(value)


def tensor_reshaped(header: dict, rng: np.random.Generator) -> None:
    """A tensor's shape changed for another of as many elements (flattened, reversed, or one dim added)."""
    entry = header[str(pick(rng, [k for k in header if k != "__metadata__"]))]
    shape = entry["shape"]
    entry["shape"] = pick(rng, [[int(np.prod(shape))], shape[::-1], [1, *shape], [*shape, 1]])


def dtype_swapped(header: dict, rng: np.random.Generator) -> None:
    entry = header[str(pick(rng, [k for k in header if k != "__metadata__"]))]
    entry["dtype"] = pick(rng, next(group for group in SAME_SIZE if entry["dtype"] in group))


def tensor_renamed(header: dict, rng: np.random.Generator) -> None:
    name = str(pick(rng, [k for k in header if k != "__metadata__"]))
    header[pick(rng, ["payload", "photo", "bank_crops", "source_crop", name + "_"])] = header.pop(name)


def length_changed(content: bytes, rng: np.random.Generator) -> bytes:
    """The 8-byte header length replaced by a random one."""
    return int(rng.integers(0, 2**62)).to_bytes(8, "little") + content[8:]


def one_damage(dangers: list[Damage], content: bytes, rng: np.random.Generator) -> bytes:
    return dangers[rng.integers(len(dangers))](content, rng)


def outcome(action: Callable[[], object], what: str) -> str:
    """Run ``action``: "result", "refused" (an InputError), or what went wrong otherwise (another
    exception, or taking longer than TIME_BOUND)."""
    began = time.monotonic()
    try:
        action()
        ended = "result"
    except InputError:
        ended = "refused"
    except Exception as error:  # noqa: BLE001 - collecting every other exception is the point
        return f"{what}: {type(error).__name__}: {error}"[:300]
    seconds = time.monotonic() - began
    return ended if seconds <= TIME_BOUND else f"{what}: took {seconds:.1f} s"


def check(outcomes: list[str], what: str) -> None:
    """Every outcome a result or a refusal; the counts printed (run with -s to see them)."""
    print(f"\n{len(outcomes)} damaged {what}: {outcomes.count('result')} results, {outcomes.count('refused')} refused")
    assert [o for o in outcomes if o not in ("result", "refused")] == []


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_pretrained(tiny_weights(tmp_path_factory.mktemp("weights")), device="cpu",
                                               landmark_backend="dlib")


def test_damaged_avatars_load_or_are_refused(tmp_path: Path) -> None:
    content = tiny_avatar().save(tmp_path / "sound.avatar.safetensors").read_bytes()
    header_end = 8 + int.from_bytes(content[:8], "little")
    json.loads(content[8:header_end])  # the header is where damage matters most: half the cases go there
    dangers = [flipped, truncated, header_flipped(header_end), numbers_changed(header_end), length_changed,
               *[header_rewritten(change) for change in (metadata_junk, metadata_junk, tensor_reshaped,
                                                          dtype_swapped, tensor_renamed)]]
    rng = np.random.default_rng(15)
    path, outcomes = tmp_path / "damaged.avatar.safetensors", []

    def load_and_render() -> None:
        avatar = Avatar.load(path)  # what loads must also render, pasted back into its photo
        face = render_faces(avatar, avatar.source_landmarks[None], 32)[0]
        paste_into_photo(avatar, face, avatar.source_landmarks, 64)

    for case in range(AVATARS):
        path.write_bytes(one_damage(dangers, content, rng))
        outcomes.append(outcome(load_and_render, f"avatar case {case}"))
    check(outcomes, "avatars (loaded and rendered, or refused)")


def image_files() -> list[bytes]:
    """The astronaut at 256 px in every accepted format."""
    picture = Image.fromarray(data.astronaut()).resize((256, 256))
    files = []
    for format in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"):
        buffer = io.BytesIO()
        picture.save(buffer, format)
        files.append(buffer.getvalue())
    return files


def test_damaged_photos_are_used_or_refused(pipe: TalkingHeadPipeline, tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    dangers = [flipped, truncated, header_flipped(32), header_flipped(32)]
    files, outcomes = image_files(), []
    for case in range(PHOTOS):
        path = tmp_path / f"photo{case}.png"  # the name says PNG whatever the content is
        path.write_bytes(one_damage(dangers, files[case % len(files)], rng))
        outcomes.append(outcome(lambda: pipe.prepare_shots([path]), f"photo case {case}"))
    check(outcomes, "photos (faces found, or refused)")


def video_files(tmp_path: Path) -> list[bytes]:
    """Eight 64 px frames of a test pattern with a tone: MP4 (H.264, AAC) and a WebM written to a pipe."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source = ["-f", "lavfi", "-i", "testsrc=s=64x64:r=25:d=0.32", "-f", "lavfi", "-i", "sine=d=0.32"]
    mp4 = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg, "-y", "-nostdin", "-loglevel", "error", *source, "-pix_fmt", "yuv420p", str(mp4)],
                   check=True)
    webm = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", *source, "-c:v", "libvpx", "-c:a", "libopus",
                           "-f", "webm", "pipe:1"], check=True, capture_output=True).stdout
    return [mp4.read_bytes(), webm]


def test_damaged_drivers_decode_or_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    dangers = [flipped, truncated, header_flipped(64), header_flipped(512)]
    files, outcomes = video_files(tmp_path), []

    def decode(path: Path) -> None:
        info = probe_driver(path)
        assert all(frame.shape == (info.height, info.width, 3) for frame in iter_video_frames(path, decoded=info))

    for case in range(DRIVERS):
        path = tmp_path / f"driver{case}.{'mp4' if case % 2 == 0 else 'webm'}"
        path.write_bytes(one_damage(dangers, files[case % 2], rng))
        outcomes.append(outcome(lambda: decode(path), f"driver case {case}"))
    check(outcomes, "drivers (decoded, or refused)")
