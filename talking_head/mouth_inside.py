"""What an opened mouth shows where no shot shows it: a throat, a tongue and teeth in the person's own colours.

A warp can open a photo's mouth only by stretching what lies between its lips; where it stretches, the texture
shows the inside of a mouth instead (``shot_bank.mouth_interior`` says where). A flat dark shade there read as
a hole: the inside is painted here, in the mouth's own frame (across: corner 60 to corner 64; down: from the
upper inner lip, 0, to the lower one, 1), so it moves with the lips and the jaw and never swims:

- the throat, the person's lip colour darkened, darkest at the back and in the middle;
- a tongue resting on the lower lip, its top a low arch, in the lip colour, shaded darker towards its back;
- a row of lower teeth just above the lower lip and a row of upper teeth under the upper lip, in the colour of
  the photo's own teeth where it shows them (else an off-white at the photo's brightness), a few hundredths of
  an eye distance tall whatever the opening, as teeth are.

The photo's own teeth, where the warp shows them unstretched, stay on top (the texture only shades where rows
are pulled apart). All colours come from the shot itself (``palette``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from talking_head.landmarks.mouth import eye_distance, inner_lip_outline

#: Outer and inner lip polygons (iBUG, 0-based).
OUTER_LIPS, INNER_LIPS = tuple(range(48, 60)), tuple(range(60, 68))
#: Teeth when the photo shows none: an off-white, scaled to the photo's brightness.
DEFAULT_TEETH = (222, 214, 198)
#: Rows of teeth seen in an open mouth, in eye distances (upper, lower), and their half-width across the mouth
#: (as a share of the corners' half-distance).
TEETH_HEIGHT = (0.07, 0.05)
TEETH_SPAN = (0.72, 0.55)
#: The throat: the lip colour times this, at the back (0) and at the mouth's sides (1).
THROAT_SHADE = (0.22, 0.45)
#: The tongue's top across the mouth (t from the upper lip, at the middle and at the corners) and its colour.
TONGUE_TOP = (0.62, 0.9)
TONGUE_SHADE = (0.45, 0.78)


@dataclass(frozen=True)
class Palette:
    """A shot's mouth colours, RGB in [0, 255]."""

    lips: np.ndarray  # (3,)
    teeth: np.ndarray  # (3,)


def palette(image: np.ndarray, landmarks: np.ndarray) -> Palette:
    """The lips' colour (between the outer and inner lip lines) and the teeth's (the brighter half of what lies
    between the inner lips, where it is brighter than the lips; else ``DEFAULT_TEETH`` at the lips' brightness)
    of an (H, W, 3) uint8 RGB ``image`` with its (68, 2) ``landmarks``."""
    outer, inner = np.zeros(image.shape[:2], np.uint8), np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(outer, [np.round(landmarks[list(OUTER_LIPS)]).astype(np.int32)], 1)
    cv2.fillPoly(inner, [np.round(landmarks[list(INNER_LIPS)]).astype(np.int32)], 1)
    lip_pixels = image[(outer > 0) & (inner == 0)].astype(np.float64)
    lips = np.median(lip_pixels, axis=0) if len(lip_pixels) else np.array([150.0, 80.0, 80.0])
    between = image[inner > 0].astype(np.float64)
    brightness = between.mean(axis=1) if len(between) else np.zeros(0)
    bright = between[brightness >= np.median(brightness)] if len(between) >= 8 else np.zeros((0, 3))
    if len(bright) and bright.mean() > lips.mean() + 25:
        teeth = bright.mean(axis=0)
    else:
        teeth = np.array(DEFAULT_TEETH, np.float64) * float(np.clip(lips.mean() / 130.0, 0.7, 1.05))
    return Palette(lips, np.clip(teeth, 0, 255))


def _smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _lip_line(line: np.ndarray, origin: np.ndarray, across: np.ndarray, down: np.ndarray, half: float,
              u: np.ndarray) -> np.ndarray:
    """How far down the mouth's frame the lip ``line`` (N, 2) lies at each ``u`` (pixels)."""
    line = line - origin
    along, depth = line @ across / half, line @ down
    order = np.argsort(along)
    return np.interp(u, along[order], depth[order]).astype(np.float32)


def paint(points: np.ndarray, colours: Palette, eye_distance: float, shape: tuple[int, int],
          origin: tuple[int, int]) -> np.ndarray:
    """The inside of the mouth whose (68, 2) ``points`` (output pixels) are given, over a window of ``shape``
    (rows, cols) whose top-left pixel is ``origin`` (row, col): (rows, cols, 3) RGB in [0, 255], float32 (a
    colour needs no more, and float64 took twice the time at 512 px). Defined everywhere (what lies outside the
    inner lips is the throat's colour; the caller masks it)."""
    rows, cols = np.ogrid[origin[0]:origin[0] + shape[0], origin[1]:origin[1] + shape[1]]
    left, right = points[60].astype(np.float64), points[64].astype(np.float64)
    centre = (left + right) / 2
    half = max(float(np.linalg.norm(right - left)) / 2, 1.0)
    across = (right - left) / (2 * half)
    down = np.array([-across[1], across[0]])
    if (points[57] - points[51]) @ down < 0:
        down = -down
    x, y = (cols - centre[0]).astype(np.float32), (rows - centre[1]).astype(np.float32)
    u = (x * np.float32(across[0]) + y * np.float32(across[1])) / np.float32(half)
    depth = x * np.float32(down[0]) + y * np.float32(down[1])
    outline = inner_lip_outline(points)  # the lips' curves, as the opening is drawn (``between_the_lips``)
    middle = len(outline) // 2  # corner 64: the upper lip before it, the lower one after
    upper = _lip_line(outline[:middle + 1], centre, across, down, half, u)
    lower = _lip_line(np.concatenate([outline[middle:], outline[:1]]), centre, across, down, half, u)
    gap = np.maximum(lower - upper, np.float32(1e-3))
    t = (depth - upper) / gap  # 0 at the upper inner lip, 1 at the lower one
    side = np.clip(np.abs(u), 0.0, 1.0)
    lips = colours.lips.astype(np.float32)
    throat = lips * (THROAT_SHADE[0] + (THROAT_SHADE[1] - THROAT_SHADE[0]) * side ** 3)[..., None]
    top = TONGUE_TOP[0] + (TONGUE_TOP[1] - TONGUE_TOP[0]) * side ** 2
    tongue_weight = _smoothstep(top - 0.04, top + 0.04, t)
    depth_in_tongue = np.clip((t - top) / np.maximum(1 - top, 1e-3), 0, 1)
    tongue = lips * np.array([1.0, 0.82, 0.85], np.float32) * (TONGUE_SHADE[0] + (TONGUE_SHADE[1] - TONGUE_SHADE[0])
                                                              * depth_in_tongue)[..., None]
    out = throat + tongue_weight[..., None] * (tongue - throat)
    teeth = colours.teeth.astype(np.float32)
    for height, span, at_upper in ((TEETH_HEIGHT[0], TEETH_SPAN[0], True), (TEETH_HEIGHT[1], TEETH_SPAN[1], False)):
        reach = np.clip(height * eye_distance / gap, 0.0, 0.35)  # a row's height, as a share of the opening
        from_lip = t if at_upper else 1 - t
        weight = (1 - _smoothstep(reach * 0.8, reach, from_lip)) * (1 - _smoothstep(span * 0.85, span, side))
        shade = 0.8 + 0.2 * (1 - side / span).clip(0, 1)  # teeth darken towards the corners
        out = out + weight[..., None] * (teeth * shade[..., None] - out)
    return out


def lips_box(points: np.ndarray, window: tuple[slice, slice]) -> tuple[slice, slice]:
    """The rows and columns of ``window`` that the inner lips (``inner_lip_outline``) of (68, 2) ``points`` can cover,
    anti-aliased edge included (``shot_bank.between_the_lips``), relative to the window: only there is a painted
    inside shown."""
    rows, cols = window
    outline = inner_lip_outline(points)
    low = np.floor(outline.min(axis=0)).astype(int) - 1
    high = np.ceil(outline.max(axis=0)).astype(int) + 2
    top, bottom = np.clip([low[1] - rows.start, high[1] - rows.start], 0, rows.stop - rows.start)
    left, right = np.clip([low[0] - cols.start, high[0] - cols.start], 0, cols.stop - cols.start)
    return slice(int(top), int(bottom)), slice(int(left), int(right))


def paint_batch(points: torch.Tensor, shot_palettes: list[Palette], window: tuple[slice, slice], size: int
                ) -> torch.Tensor:
    """``paint`` for (B, 68, 2) targets, each with its shot's palette, over ``window`` of a ``size`` frame:
    (B, 3, h, w) in [-1, 1]. Each is painted within its own inner lips' box (``lips_box``), the throat's black
    elsewhere: the window spans a whole batch's moving mouths, three to five times one mouth at 512 px."""
    rows, cols = window
    targets = points.detach().cpu().double().numpy()
    painted = np.zeros((len(targets), rows.stop - rows.start, cols.stop - cols.start, 3), np.float32)
    for out, p, colours in zip(painted, targets, shot_palettes):
        box_rows, box_cols = lips_box(p, window)
        shape = (box_rows.stop - box_rows.start, box_cols.stop - box_cols.start)
        if min(shape) > 0:
            out[box_rows, box_cols] = paint(p, colours, float(eye_distance(p)), shape,
                                            (rows.start + box_rows.start, cols.start + box_cols.start))
    return torch.from_numpy(painted).permute(0, 3, 1, 2).div_(127.5).sub_(1).to(points.device)


def shot_palette(image: torch.Tensor, landmarks: torch.Tensor) -> Palette:
    """``palette`` of a (3, S, S) shot in [-1, 1] with its (68, 2) landmarks, read from the lips' box only."""
    points = landmarks.detach().cpu().double().numpy()
    low = np.floor(points[48:68].min(0)).astype(int) - 2
    high = np.ceil(points[48:68].max(0)).astype(int) + 3
    low, high = low.clip(0, image.shape[-1] - 1), high.clip(1, image.shape[-1])
    box = image[:, low[1]:high[1], low[0]:high[0]].detach().cpu()
    pixels = ((box.permute(1, 2, 0).float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    return palette(np.ascontiguousarray(pixels), points - low)
