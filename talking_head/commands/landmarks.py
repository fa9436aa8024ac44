"""``python -m talking_head landmarks``: the landmarks found in a photo or a video, drawn over it.

What the pipeline sees before anything is animated: which backend runs, how many faces it finds, and
where their 68 points fall. A photo or video without any face ends with exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from talking_head.commands.common import LandmarkOptions, exit_on_input_error
from talking_head.errors import InputError
from talking_head.landmarks.detect import BackendUnavailable, LandmarkDetector, NoFaceError, get_detector
from talking_head.landmarks.rasterize import overlay_landmarks
from talking_head.media import VideoSink, iter_video_frames, load_photo, probe_driver
from talking_head.options import add_dataclass_arguments, dataclass_from_args

#: What ``--out`` may be: a picture (for a photo) or an mp4 (for a video).
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIX = ".mp4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="a photo, or a video (decoded as a driving video is)")
    parser.add_argument("--out", type=Path, required=True,
                        help=f"the overlay to write: a picture ({', '.join(PICTURE_SUFFIXES)}) for a photo, "
                             f"{VIDEO_SUFFIX} for a video")
    add_dataclass_arguments(parser, LandmarkOptions)


def main(args: argparse.Namespace) -> None:
    suffix = args.out.suffix.lower()
    try:
        if suffix not in (*PICTURE_SUFFIXES, VIDEO_SUFFIX):
            raise InputError(f"--out must be a picture ({', '.join(PICTURE_SUFFIXES)}) or an {VIDEO_SUFFIX}, got "
                             f"{args.out.name!r}")
        detector = get_detector(dataclass_from_args(LandmarkOptions, args).landmarks)
        print(f"landmarks: {detector.name}")
        found = (overlay_video if suffix == VIDEO_SUFFIX else overlay_photo)(args.input, args.out, detector)
    except (InputError, BackendUnavailable) as error:
        exit_on_input_error(error)
    print(found)


def overlay_photo(photo: Path, out: Path, detector: LandmarkDetector) -> str:
    """Draw every face's landmarks over ``photo`` into the picture ``out``; what was found, in words."""
    image = load_photo(photo)
    faces = detector.detect(image)
    if not faces:
        raise NoFaceError.in_photo(photo.name)
    Image.fromarray(overlay_landmarks(image, [face.landmarks for face in faces])).save(out)
    return f"{out}: {len(faces)} {'face' if len(faces) == 1 else 'faces'} found"


def overlay_video(video: Path, out: Path, detector: LandmarkDetector) -> str:
    """Draw every face's landmarks over each frame of ``video`` (at a driver's capped frame rate and size,
    its sound kept) into the mp4 ``out``; what was found, in words."""
    info = probe_driver(video)
    height, width = info.height // 2 * 2, info.width // 2 * 2  # H.264 needs even sizes
    frames = with_face = most = 0
    with VideoSink(out, width, height, info.fps, audio_from=video if info.has_audio else None) as sink:
        for frame in iter_video_frames(video, decoded=info):
            faces = detector.detect(frame)
            frames, with_face, most = frames + 1, with_face + bool(faces), max(most, len(faces))
            sink.write(overlay_landmarks(frame, [face.landmarks for face in faces])[:height, :width])
        if not with_face:  # raised inside the sink: no overlay is left behind
            raise NoFaceError(f"{video.name}: no face found in any of its {frames} frames. Use a video where a face "
                              f"is clearly visible.")
    return f"{out}: {frames} frames, a face in {with_face} of them, at most {most} in one frame"
