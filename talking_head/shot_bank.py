"""The K shots as a texture bank: per target frame and face region, the shot that looks most like it.

With one shot every target is warped from it; with more, the target's head pose is taken from the
shot whose face is posed most like the target's, and its mouth from the shot whose mouth is most
like the target's (open, closed, smiling). So more shots give more poses and mouth states to copy
rather than to invent, and K = 1 / 8 / 32 differ. Likeness is the full Procrustes distance of the
region's landmarks (position, size and in-plane rotation factored out), the warp baseline's measure.

Each shot's warp shades the mouth's inside where no warp can show it (``mouth_interior``): a mouth
opened wider than the photo's shows its teeth hanging from the lips (``warp.TEETH_HANG``) over the
dark of the mouth, and a mouth closed over a smiling photo's teeth shows a dark seam. This is the
texture G starts from; G may still paint over it inside the mouth (``paint_region``). Measured on
the astronaut with dlib as the judge (``benchmarks/real_photo_quality.py``, four drivers), the
warp's mouth-follow r rose from 0.80 to 0.85: the stretched teeth and the white line between
closed lips had read as a mouth half open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talking_head.landmarks.align import CropBox
from talking_head.landmarks.mouth import inner_lip_outline
from talking_head.mouth_inside import paint_batch, shot_palette
from talking_head.warp import GRID_SIZE, CropFrame, sample, sampling_map

#: The face without the mouth: jaw, brows, nose, eyes (what head pose shows in).
FACE_POINTS = tuple(range(0, 48))
#: Outer and inner lips.
MOUTH_POINTS = tuple(range(48, 68))
#: The side, in pixels, of the face crop inside an avatar's texture bank: the largest output the app
#: offers, so a 512 px face is one sampling of the photo, not an upscaled 128 px crop.
BANK_SIZE = 512
#: Pixels of the photo kept around that crop on every side, for a warp that samples beyond the crop.
#: Made when the warp's forehead and ring points pulled hair down from above the crop (16 px of
#: repeated edge at the top of a 128 px crop for a 12 px nod); with the crop's border pinned at
#: ``warp.BORDER_ANCHORS_PER_SIDE`` anchors a side the map now stays within a pixel of the crop, so
#: the margin is nearly unused. Kept because it is part of the avatar file's layout.
BANK_MARGIN = 64
#: The side of a bank image, and the face crop's place in it (``warp.CropFrame``).
BANK_IMAGE_SIZE = BANK_SIZE + 2 * BANK_MARGIN
BANK_FRAME = (float(BANK_MARGIN), float(BANK_SIZE))
#: The mouth region of the composite: an ellipse around the lips this much larger than their extent.
MOUTH_MASK_SCALE = (1.35, 1.9)
#: The inner lips (corners 60 and 64), and the ellipse over them where the generator may paint.
INNER_LIP_POINTS = tuple(range(60, 68))
PAINT_REGION_SCALE = (1.1, 1.4)
#: Inside the mouth, where the warp pulls the photo's rows apart by this factor (output rows per photo
#: row, relative to the crop's scale), the inside of a mouth (``mouth_inside.paint``) starts and is complete: a
#: mouth opened wider than the photo's shows a throat, a tongue and teeth, not its teeth stretched tall.
CAVITY_STRETCH = (1.4, 2.8)
#: As the target's inner lips close to this share of the photo's gap, what the photo shows between its
#: lips (its teeth, if it smiles) is shaded from none to all: the lips close over it and the few
#: rows left between them become the dark seam of closed lips, not a white wavy line (measured: dlib
#: read that line as a mouth 0.15-0.25 eye distances open while the driver's was shut, 0.01-0.08).
SEAM_CLOSING = (0.7, 0.25)
#: A photo whose inner lips are this far apart (eye distances) shows none, then all, of the inside of its mouth:
#: below, an opened mouth is painted whole (``mouth_interior``).
PHOTO_SHOWS_INSIDE = (0.03, 0.08)
#: The seam of shut lips, RGB.
CAVITY_COLOUR = (38, 16, 18)


def bank_box(box: CropBox) -> CropBox:
    """A face's crop ``box`` (x0, y0, side in photo pixels) grown by the bank's margin on every side (the same
    centre): where a bank image is cut from the photo."""
    x0, y0, side = box
    grown = side * BANK_IMAGE_SIZE / BANK_SIZE
    pad = side * BANK_MARGIN / BANK_SIZE
    return x0 - pad, y0 - pad, grown


def _centred_complex(landmarks: np.ndarray) -> np.ndarray:
    """(..., N, 2) landmarks as complex numbers, centred and scaled to unit norm."""
    z = landmarks[..., 0].astype(np.float64) + 1j * landmarks[..., 1].astype(np.float64)
    z = z - z.mean(axis=-1, keepdims=True)
    return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def procrustes_distances(shot_landmarks: np.ndarray, target_landmarks: np.ndarray) -> np.ndarray:
    """Full Procrustes distances in [0, 1] from (K, N, 2) shots to (N, 2) -> (K,), or to (T, N, 2) -> (T, K).

    The residual left after the best similarity (translation, scale, rotation) maps a shot's points
    onto the target's: 0 for the same configuration anywhere in the frame at any size or roll.
    """
    shots, targets = _centred_complex(np.asarray(shot_landmarks)), _centred_complex(np.asarray(target_landmarks))
    overlap = np.abs(targets @ shots.conj().T) ** 2 if targets.ndim == 2 else np.abs(shots.conj() @ targets) ** 2
    return np.sqrt(np.clip(1.0 - overlap, 0.0, None))


@dataclass(frozen=True)
class ShotChoice:
    """Per target: the shot its face is warped from and the shot its mouth is warped from, blended with the
    next-nearest mouth (``mouth_second``) by ``second_weight`` so that a change of nearest shot is a cross-fade,
    not a jump (``blend_weights``)."""

    face: np.ndarray  # (T,) int
    mouth: np.ndarray  # (T,) int
    mouth_second: np.ndarray | None = None  # (T,) int
    second_weight: np.ndarray | None = None  # (T,) float in [0, 0.5]


#: A second mouth weighing less than this is not warped (its share would move a pixel by less than a level).
MIN_SECOND_WEIGHT = 0.01


def blend_weights(distances: np.ndarray) -> np.ndarray:
    """(T, K) shot distances sorted per row -> (T,) the weight of the second-nearest, continuous in the distances.

    Each of the nearest two weighs ``(d3 - d) / d``: a shot's own mouth (d = 0) takes it all, the nearest two
    tie at half each, and a shot entering the nearest two (d = d3) starts from nothing. Without a third shot
    (K = 2, or one excluded) it is inverse-distance weighting.
    """
    d1, d2 = np.maximum(distances[:, 0], 1e-9), np.maximum(distances[:, 1], 1e-9)
    d3 = distances[:, 2] if distances.shape[1] > 2 else np.full_like(d1, np.inf)
    with np.errstate(invalid="ignore"):
        w1 = np.where(np.isfinite(d3), (d3 - d1) / d1, 1 / d1)
        w2 = np.where(np.isfinite(d3), (d3 - d2) / d2, 1 / d2)
    total = w1 + w2
    return np.where(total > 0, w2 / np.where(total > 0, total, 1), 0.5)


def choose_shots(shot_landmarks: np.ndarray, target_landmarks: np.ndarray, exclude: np.ndarray | None = None
                 ) -> ShotChoice:
    """The nearest shot per region for each of (T, 68, 2) targets among (K, 68, 2) shots.

    ``exclude`` (T,) names one shot per target that may not be chosen (leave-one-out fine-tuning: a
    shot must not be its own texture); it is ignored when K = 1.
    """
    shot_landmarks, target_landmarks = np.asarray(shot_landmarks), np.asarray(target_landmarks)
    nearest = []
    for region in (FACE_POINTS, MOUTH_POINTS):
        distances = procrustes_distances(shot_landmarks[:, region], target_landmarks[:, region])  # (T, K)
        if exclude is not None and shot_landmarks.shape[0] > 1:
            distances[np.arange(len(distances)), exclude] = np.inf
        nearest.append((np.argsort(distances, axis=1, kind="stable"), np.sort(distances, axis=1)))
    (face_order, _), (mouth_order, mouth_distances) = nearest
    if mouth_distances.shape[1] < 2 or not np.isfinite(mouth_distances[:, 1]).all():
        return ShotChoice(face_order[:, 0], mouth_order[:, 0])
    return ShotChoice(face_order[:, 0], mouth_order[:, 0], mouth_order[:, 1], blend_weights(mouth_distances))


#: How fast the soft ellipses fall from 1 to 0 at their edge (radius 1).
ELLIPSE_SHARPNESS = 12.0


def _ellipse_axes(target_points: torch.Tensor, points: tuple[int, ...], scale: tuple[float, float]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The soft ellipse of ``_lip_ellipse`` for each target: its centre (T, 2), its unit axes along and across the
    mouth (T, 2) each, and its two semi-axes (T, 2) in pixels."""
    lips = target_points[:, list(points)].float()
    centre = lips.mean(dim=1)
    across = lips[:, len(points) // 2] - lips[:, 0]  # mouth corner to corner
    half_width = across.norm(dim=-1).clamp_min(1.0) / 2
    direction = across / (2 * half_width[:, None])
    normal = torch.stack([-direction[:, 1], direction[:, 0]], dim=-1)
    offsets = lips - centre[:, None]
    half_height = (offsets @ normal[:, :, None]).abs().amax(dim=(1, 2)).clamp_min(half_width * 0.25)
    return centre, direction, normal, torch.stack([scale[0] * half_width, scale[1] * half_height], dim=-1)


def _lip_ellipse(target_points: torch.Tensor, size: int, points: tuple[int, ...], scale: tuple[float, float],
                 window: Window | None = None) -> torch.Tensor:
    """A soft ellipse over ``points`` of each target (the first and the middle one are the mouth's corners),
    ``scale`` times their half extent along and across the mouth: (T, 1, size, size) in [0, 1], or only the rows
    and columns of ``window``."""
    centre, direction, normal, semi = _ellipse_axes(target_points, points, scale)
    rows, cols = window or (slice(0, size), slice(0, size))
    xs = torch.arange(cols.start, cols.stop, dtype=torch.float32, device=centre.device)
    ys = torch.arange(rows.start, rows.stop, dtype=torch.float32, device=centre.device)
    dx = xs[None, None, :] - centre[:, 0, None, None]  # (T, 1, w): the offset from the centre, by column
    dy = ys[None, :, None] - centre[:, 1, None, None]  # (T, h, 1): by row
    (ax, ay), (nx, ny) = (t.T[:, :, None, None] for t in (direction, normal))  # each (T, 1, 1)
    u = (dx * ax + dy * ay) / semi[:, 0, None, None]
    v = (dx * nx + dy * ny) / semi[:, 1, None, None]
    radius = torch.sqrt(u.square() + v.square())
    return torch.sigmoid((1.0 - radius) * ELLIPSE_SHARPNESS)[:, None]


def mouth_mask(target_points: torch.Tensor, size: int) -> torch.Tensor:
    """A soft ellipse around each target's lips, where the mouth shot is blended in: (T, 68, 2) output
    pixels -> (T, 1, size, size) in [0, 1]."""
    return _lip_ellipse(target_points, size, MOUTH_POINTS, MOUTH_MASK_SCALE)


def paint_region(target_points: torch.Tensor, size: int, window: Window | None = None) -> torch.Tensor:
    """Where the generator may paint over the warp, (T, 1, size, size): the inside of the mouth (only the rows
    and columns of ``window`` when one is given: ``paint_region_window``).

    The lips stay the photo's own (warped) pixels; between them is what no warp of a shot can show
    as the mouth opens (teeth, tongue, the dark of the mouth). ``target_points`` (T, 68, 2) are in the
    pixels of a ``size`` square output.
    """
    return _lip_ellipse(target_points, size, INNER_LIP_POINTS, PAINT_REGION_SCALE, window)


def paint_region_window(target_points: torch.Tensor, size: int, margin: int = 0) -> Window | None:
    """The rows and columns of a ``size`` frame outside which every target's ``paint_region`` is under
    ``PAINT_FLOOR``, grown by ``margin`` (None: nowhere in the frame), from the ellipses' shapes alone: the
    region is then computed only there (``paint_window`` reads it from a whole frame's region instead)."""
    centre, direction, normal, semi = _ellipse_axes(target_points, INNER_LIP_POINTS, PAINT_REGION_SCALE)
    reach = 1.0 + math.log((1 - PAINT_FLOOR) / PAINT_FLOOR) / ELLIPSE_SHARPNESS  # the floor's radius
    half = reach * torch.sqrt((semi[:, :1] * direction).square() + (semi[:, 1:] * normal).square())  # (T, 2): x, y
    low = (centre - half).floor().amin(dim=0) - margin
    high = (centre + half).ceil().amax(dim=0) + 1 + margin
    (left, top), (right, bottom) = low.clamp(0, size).int().tolist(), high.clamp(0, size).int().tolist()
    return (slice(top, bottom), slice(left, right)) if bottom > top and right > left else None


#: Where a paint region is under this, the frame is the warp: painting (or shading) there would move it by less
#: than a quarter of an 8-bit level.
PAINT_FLOOR = 1 / 1024
#: Rows and columns of a frame.
Window = tuple[slice, slice]


def paint_window(region: torch.Tensor, margin: int = 0) -> Window | None:
    """The rows and columns of (B, 1, H, W) ``region`` where any frame's region exceeds ``PAINT_FLOOR``, grown by
    ``margin`` pixels within the frame (None: nowhere). Work confined to the paint region needs only these."""
    peak = region.detach().flatten(0, 1).amax(dim=0)  # (H, W); a max, as torch's any() is slow here
    rows, cols = (peak.amax(dim=1) > PAINT_FLOOR).nonzero()[:, 0], (peak.amax(dim=0) > PAINT_FLOOR).nonzero()[:, 0]
    if len(rows) == 0:
        return None
    height, width = peak.shape
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, height)),
            slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, width)))


def _smoothstep(x: torch.Tensor, edges: tuple[float, float]) -> torch.Tensor:
    t = ((x - edges[0]) / (edges[1] - edges[0])).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _inner_lip_gap(points: torch.Tensor) -> torch.Tensor:
    """(B, 68, 2) -> (B,): the inner lips' gap (three point pairs) over the eye distance."""
    gap = (points[:, [61, 62, 63]] - points[:, [67, 66, 65]]).norm(dim=-1).mean(dim=1)
    eyes = (points[:, 36:42].mean(dim=1) - points[:, 42:48].mean(dim=1)).norm(dim=-1)
    return gap / eyes.clamp_min(1e-6)


def between_the_lips(points: torch.Tensor, size: int, window: Window | None = None) -> torch.Tensor:
    """(B, 68, 2) landmarks -> (B, 1, size, size): 1 inside the inner lips (``inner_lip_outline``: round lips
    through the eight points), 0 outside, its edge anti-aliased; only the rows and columns of ``window`` when one is
    given."""
    rows, cols = window or (slice(0, size), slice(0, size))
    origin = np.array([cols.start, rows.start], np.float64)
    masks = np.zeros((len(points), rows.stop - rows.start, cols.stop - cols.start), np.uint8)
    for mask, lips in zip(masks, inner_lip_outline(points.detach().cpu().double().numpy())):
        cv2.fillPoly(mask, [np.round((lips - origin) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return torch.from_numpy(masks).float().div_(255)[:, None].to(points.device)


def mouth_interior(pixel_map: torch.Tensor, source_points: torch.Tensor, target_points: torch.Tensor,
                   between_lips: torch.Tensor, target_lips: torch.Tensor, scale: float, region: torch.Tensor,
                   out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How much of each output pixel is the inside of an opened mouth, and how much the seam of shut lips: two
    (B, 1, h, w) in [0, 1] (``mouth_inside.paint`` paints the first, ``CAVITY_COLOUR`` the second).

    A warp moves the photo's pixels; it cannot open a mouth wider than the photo's, only stretch what
    lies between the lips (teeth, for a smiling photo), nor close it, only squeeze those teeth into a
    thin white line (dlib read that line as an open mouth). So inside the inner lips (``region``, the
    ``paint_region``) the rows the warp pulls apart are shaded dark (``CAVITY_STRETCH``) and, as the
    lips close, so is what lay between the photo's lips (``SEAM_CLOSING``). ``pixel_map`` (B, h, w, 2)
    is the warp's sampling map, ``between_lips`` (B, 1, h, w) the photo's inner-lip polygon sampled by
    it, ``target_lips`` (B, 1, h, w) the target's own inner-lip polygon (``between_the_lips``): the stretch is dark
    only between the target's lips, as a mouth is (shaded over the whole paint region, the dark reached past the
    corners of a mouth narrowing into an "O" and dlib read a wide grin: width r 0.35 against the driver's), and
    ``region`` (B, 1, h, w): the whole ``out_size`` frame, or a window of it with a margin of
    ``interior_margin(out_size)`` pixels. ``scale`` is the source pixels per output pixel of an unmoved
    face; ``source_points`` and ``target_points`` (B, 68, 2) in their own pixels.
    """
    rows = pixel_map[..., 1]  # source row sampled by each output pixel
    step = torch.cat([rows[:, 1:2] - rows[:, :1], (rows[:, 2:] - rows[:, :-2]) / 2, rows[:, -1:] - rows[:, -2:-1]],
                     dim=1) / scale  # photo rows per output row: 1 unmoved, < 1 pulled apart
    stretched = _smoothstep(1 / step.clamp_min(1e-3)[:, None], CAVITY_STRETCH)
    width = _softening(out_size)
    for box in ((width, 1), (1, width)):  # a box blur is separable, its edge counts too: 2k sums a pixel, not k^2
        stretched = F.avg_pool2d(stretched, box, stride=1, padding=(box[0] // 2, box[1] // 2),
                                 count_include_pad=False)
    closing = _inner_lip_gap(target_points) / _inner_lip_gap(source_points).clamp_min(1e-3)
    shut = between_lips * _smoothstep(closing, SEAM_CLOSING).view(-1, 1, 1, 1)
    # A photo that shows no inside of its own (lips shut) has nothing between its lips worth keeping: all of the
    # target's opening is painted, not only the rows the warp pulls apart (their edges showed its lips' pixels
    # stretched into stripes).
    shows_inside = _smoothstep(_inner_lip_gap(source_points), PHOTO_SHOWS_INSIDE).view(-1, 1, 1, 1)
    region = region.to(stretched.dtype)
    return (stretched * shows_inside + (1 - shows_inside)) * target_lips * region, shut * region


def _softening(out_size: int) -> int:
    """The box that softens the shading's steps between grid rows: a few output pixels at any size."""
    return max(3, (out_size // 64) | 1)


def interior_margin(out_size: int) -> int:
    """Pixels around the paint region's window that ``mouth_interior`` reads (its box and its row differences)."""
    return _softening(out_size) // 2 + 1


def sample_shots(images: torch.Tensor, shots: np.ndarray, pixel_map: torch.Tensor, mode: str = "bilinear"
                 ) -> torch.Tensor:
    """``warp.sample`` of shot ``shots[b]`` of ``images`` (K, C, S, S) at ``pixel_map[b]`` -> (B, C, h, w).

    Without a copy of a shot per target: the targets of one shot are sampled from it in one call, their
    maps stacked into one tall grid. Copying a 640 px bank image for each of 8 targets was a tenth of
    the warp's time in a profile; the tall grid samples a little slower, so the gain is the memory
    (39 MB a batch of 8), not time.
    """
    batch, height, width, _ = pixel_map.shape
    out = pixel_map.new_empty(batch, images.shape[1], height, width, dtype=images.dtype)
    for shot in np.unique(shots):
        rows = torch.as_tensor(np.flatnonzero(shots == shot), device=pixel_map.device)
        grid = pixel_map[rows].reshape(1, len(rows) * height, width, 2)
        sampled = sample(images[int(shot):int(shot) + 1], grid, mode)
        out[rows] = sampled.reshape(images.shape[1], len(rows), height, width).transpose(0, 1)
    return out


def warp_shots(images: torch.Tensor, landmarks: torch.Tensor, shots: np.ndarray, target_points: torch.Tensor,
               out_size: int, mode: str = "bilinear", frame: CropFrame | None = None, grid_size: int = GRID_SIZE
               ) -> torch.Tensor:
    """Shot ``shots[t]`` of ``images`` warped onto each of ``target_points``, the mouth's inside shaded where
    the warp cannot show it (``mouth_interior``).

    ``images`` (K, 3, S, S) in [-1, 1] with ``landmarks`` (K, 68, 2) in their pixels; ``shots`` (T,) ints;
    ``target_points`` (T, 68, 2) in output pixels; ``frame`` and ``grid_size`` as in ``warp.sampling_map``. Returns
    (T, 3, out_size, out_size).
    """
    shots = np.asarray(shots)
    source_points = landmarks[torch.as_tensor(shots, device=landmarks.device)]
    pixel_map = sampling_map(source_points, target_points, images.shape[-1], out_size, frame, grid_size)
    warped = sample_shots(images, shots, pixel_map, mode)
    window = paint_region_window(target_points, out_size, interior_margin(out_size))  # the shading is 0 outside
    if window is None:
        return warped
    rows, cols = window
    pixel_map, region = pixel_map[:, rows, cols], paint_region(target_points, out_size, window)
    used, position = np.unique(shots, return_inverse=True)  # one polygon drawn per shot used
    lips = between_the_lips(landmarks[torch.as_tensor(used, device=landmarks.device)], images.shape[-1])
    between_lips = sample_shots(lips, position.reshape(-1), pixel_map)
    scale = (frame[1] if frame else images.shape[-1]) / out_size
    target_lips = between_the_lips(target_points, out_size, window)
    opened, shut = mouth_interior(pixel_map, source_points, target_points, between_lips, target_lips, scale, region,
                                  out_size)
    seam = torch.tensor(CAVITY_COLOUR, dtype=warped.dtype, device=warped.device).view(1, 3, 1, 1) / 127.5 - 1
    painted = seam.expand(len(shots), -1, *opened.shape[-2:]).clone()
    opening = np.flatnonzero(opened.flatten(1).amax(dim=1).cpu().numpy() > PAINT_FLOOR)  # a shut mouth: no inside
    if len(opening):
        palettes = {int(shot): shot_palette(images[int(shot)], landmarks[int(shot)])
                    for shot in np.unique(shots[opening])}  # once a shot, not once a frame
        index = torch.as_tensor(opening, device=painted.device)
        painted[index] = paint_batch(target_points[index], [palettes[int(shot)] for shot in shots[opening]], window,
                                     out_size).to(painted.dtype)
    cavity = torch.maximum(opened, shut)
    colour = (opened * painted + shut * seam) / (opened + shut).clamp_min(1e-6)
    inside = warped[..., rows, cols]
    warped[..., rows, cols] = inside + cavity.to(warped.dtype) * (colour.to(warped.dtype) - inside)
    return warped


def warp_from_bank(images: torch.Tensor, landmarks: torch.Tensor, target_points: torch.Tensor, out_size: int,
                   choice: ShotChoice | None = None, mode: str = "bilinear", frame: CropFrame | None = None,
                   grid_size: int = GRID_SIZE) -> torch.Tensor:
    """The texture for each target: its face shot warped onto it, with its mouth shots' mouths blended in (the
    nearest, cross-faded with the next-nearest: ``ShotChoice``).

    ``images`` (K, 3, S, S) in [-1, 1] with ``landmarks`` (K, 68, 2) in their pixels; ``target_points``
    (T, 68, 2) in output pixels; returns (T, 3, out_size, out_size). ``choice`` defaults to the
    nearest shots (``choose_shots``); ``frame`` places the output crop in the images (``BANK_FRAME``
    for an avatar's bank; default: the whole image).
    """
    if choice is None:
        choice = choose_shots(landmarks.cpu().numpy(), target_points.cpu().numpy())

    def warped_from(shots: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        return warp_shots(images, landmarks, shots[rows], target_points[torch.as_tensor(rows, device=images.device)],
                          out_size, mode, frame, grid_size)

    every = np.arange(len(choice.face))
    warped = warped_from(choice.face, every)
    second = choice.second_weight if choice.second_weight is not None else np.zeros(len(every))
    blended = second >= MIN_SECOND_WEIGHT
    rows = np.flatnonzero((choice.mouth != choice.face) | blended)
    if not len(rows):
        return warped
    mouths = warped[torch.as_tensor(rows)].clone()
    own = np.flatnonzero(choice.mouth[rows] != choice.face[rows])
    if len(own):
        mouths[torch.as_tensor(own)] = warped_from(choice.mouth, rows[own])
    mixed = np.flatnonzero(blended[rows])
    if len(mixed):
        weight = torch.as_tensor(second[rows[mixed]], dtype=warped.dtype).view(-1, 1, 1, 1)
        index = torch.as_tensor(mixed)
        mouths[index] = mouths[index] + weight * (warped_from(choice.mouth_second, rows[mixed]) - mouths[index])
    index = torch.as_tensor(rows, device=images.device)
    mask = mouth_mask(target_points[index], out_size).to(warped.dtype)
    return warped.index_copy(0, index, mask * mouths + (1 - mask) * warped[index])


def episode_textures(shot_frames: torch.Tensor, shot_points: torch.Tensor, target_points: torch.Tensor
                     ) -> torch.Tensor:
    """Meta-learning: each episode's target built from its own K shots, (B, K, 3, H, W) -> (B, 3, H, W)."""
    return torch.cat([warp_from_bank(frames, points, target[None], frames.shape[-1])
                      for frames, points, target in zip(shot_frames, shot_points, target_points)])
