"""Facial landmarks: detection (68 iBUG points), rasterization (the paper's coloured polylines),
cropping, tracking through video, smoothing and retargeting."""

from talking_head.landmarks.align import (FACE_FRACTION, VERTICAL_OFFSET, Retargeter, crop_box,
                                          crop_face, from_crop_coords, inter_ocular_distance, retarget,
                                          to_crop_coords)
from talking_head.landmarks.detect import (BackendUnavailable, DlibBackend, FaceAlignmentBackend, FaceDetection,
                                           LandmarkDetector, NoFaceError, detect_face, detect_video, get_detector,
                                           to_rgb_uint8)
from talking_head.landmarks.rasterize import LANDMARK_PARTS, draw_landmarks
from talking_head.landmarks.smooth import CentredSmoother, LandmarkSmoother, smooth_stream
from talking_head.landmarks.track import FaceTracker, TrackConfig

__all__ = [
    "LANDMARK_PARTS", "draw_landmarks",
    "BackendUnavailable", "DlibBackend", "FaceAlignmentBackend", "FaceDetection", "LandmarkDetector", "NoFaceError",
    "detect_face", "detect_video", "get_detector", "to_rgb_uint8",
    "FACE_FRACTION", "VERTICAL_OFFSET", "Retargeter", "crop_box", "crop_face",
    "from_crop_coords", "inter_ocular_distance", "retarget", "to_crop_coords",
    "CentredSmoother", "LandmarkSmoother", "smooth_stream",
    "FaceTracker", "TrackConfig",
]
