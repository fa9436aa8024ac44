"""The visible "synthetic" mark every generated video carries (the app offers no way to turn it off)."""

from __future__ import annotations

import cv2
import numpy as np

MARK_TEXT = "SYNTHETIC - AI generated"
POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left")
#: Where the mark goes unless asked otherwise (``RenderConfig.mark_position``, read by live mode and the app).
DEFAULT_POSITION = POSITIONS[0]


def stamp_synthetic(frame: np.ndarray, position: str = DEFAULT_POSITION) -> np.ndarray:
    """Return ``frame`` (H, W, 3 uint8) with a legible label in one corner, sized to the frame."""
    if position not in POSITIONS:
        raise ValueError(f"unknown mark position {position!r}; choose one of {POSITIONS}")
    out = np.ascontiguousarray(frame, dtype=np.uint8).copy()
    height, width = out.shape[:2]
    scale = max(0.3, min(height, width) / 600)
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(MARK_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if text_w + 8 > width:  # a very narrow frame: shrink the text to fit
        scale *= (width - 8) / (text_w + 8)
        (text_w, text_h), baseline = cv2.getTextSize(MARK_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, text_h // 3)
    box_w, box_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    x0 = width - box_w - pad if position.endswith("right") else pad
    y0 = height - box_h - pad if position.startswith("bottom") else pad
    x0, y0 = max(0, x0), max(0, y0)
    region = out[y0:y0 + box_h, x0:x0 + box_w]
    region[:] = (region.astype(np.float32) * 0.35).astype(np.uint8)  # darken: readable on any background
    cv2.putText(out, MARK_TEXT, (x0 + pad, y0 + pad + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)
    return out
