"""A dense warp of a source image onto target landmarks, in torch: batched and differentiable.

The generator's texture path (``ModelConfig.texture_path``) starts from the source photo's own pixels
moved to where the target's landmarks say they go, as every widely used reenactment system does
(first-order-model and TPSMM warp the source and inpaint, LivePortrait warps a feature volume, the
paper's successor warps a high-frequency texture). The warp is a thin-plate spline (Bookstein 1989):
the smoothest map taking the target's control points exactly onto the source's, solved in closed
form, so it batches and needs no triangulation.

Control points are the 68 landmarks (a closed mouth's inner lips kept slightly apart, ``lips_apart``),
points that keep the photo's teeth their size (``teeth_points``) and anchors along the border of the
output crop (so the background stays still). Points extrapolated from the landmarks (a forehead line and a ring around
the head, meant to move hair and the head's outline with the head) were tried and removed: on
held-out synthetic identities they cost the warp 1.1 dB PSNR and 0.027 SSIM at K = 1 (they drag the
still background near the head along with it, and pin the hair to a guessed forehead), and on the
real-photo judge (dlib, ``benchmarks/real_photo_quality.py``) they changed nothing beyond run-to-run
noise. Five anchors a side instead of three keep the background between head and border still:
+0.4 dB at K = 1 over three.

Coordinates are pixels with the project's convention (pixel ``j`` is centred on coordinate ``j``;
sizes scale coordinates linearly). The map is evaluated on a grid of at most ``GRID_SIZE`` points a
side and bilinearly upsampled: it is smooth, and evaluating it exactly at 512x512 costs more than
the generator.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

#: Anchors per side of the output crop's border (corners included): the background stays there.
BORDER_ANCHORS_PER_SIDE = 5
#: Teeth hang from the lips: points this share of the photo's lip gap below its upper inner lip (and
#: above its lower one) keep that distance from the target's lips as a mouth opens wider than the
#: photo's, so the upper teeth move with the upper lip instead of stretching tall, and the stretch
#: gathers between the teeth, where ``shot_bank.mouth_interior`` shades it as the dark of the mouth.
#: As a mouth closes they close in proportion, as the rest of the mouth does.
TEETH_HANG = (0.55, 0.2)
#: The warp never closes a pair of inner-lip points (61/67, 62/66, 63/65) to less than this share of the
#: photo's gap between them, measured across the target's mouth. A smile's lower inner lip curves more than
#: its upper one: closed by moving the lower lip up, its ends cross the upper lip's, and a spline through
#: points that coincide or cross folds the photo's teeth into a zigzag with dark blots where it stretches.
#: The thin band left is shaded as the seam of closed lips (``shot_bank.mouth_interior``).
LIPS_APART = 0.25
#: Regularisation of the spline (in units of the source size): tiny, so the map stays exact at the
#: control points, yet enough to solve when two target points coincide (a closed mouth's inner lips).
REGULARIZATION = 1e-5
#: The precision the fitted spline is evaluated in (it is solved in float64).
EVALUATION_DTYPE = torch.float32
#: Largest side of the grid the spline is evaluated on before upsampling.
GRID_SIZE = 128
#: Query points evaluated together: their kernel against the control points stays in the cache.
SPLINE_CHUNK = 256


_UPPER_INNER, _LOWER_INNER = [61, 62, 63], [67, 66, 65]


def teeth_points(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Control points that keep the photo's teeth the size they are (``TEETH_HANG``): (B, 6, 2) each.

    ``source`` and ``target`` (B, 68, 2) landmarks in the same pixels.
    """
    upper, lower = _UPPER_INNER, _LOWER_INNER
    source_gap, target_gap = source[:, lower] - source[:, upper], target[:, lower] - target[:, upper]
    source_length = source_gap.norm(dim=-1, keepdim=True)
    target_length = target_gap.norm(dim=-1, keepdim=True)
    direction = target_gap / target_length.clamp_min(1e-9)
    reach = torch.minimum(source_length, target_length) * direction  # the photo's gap, or less when closing
    (down, up) = TEETH_HANG
    hung_source = torch.cat([source[:, upper] + down * source_gap, source[:, lower] - up * source_gap], dim=1)
    hung_target = torch.cat([target[:, upper] + down * reach, target[:, lower] - up * reach], dim=1)
    return hung_source, hung_target


def _across_the_mouth(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 68, 2) -> how far each inner-lip pair's lower point lies below its upper one across the mouth (B, 3),
    and the unit vector across the mouth, downwards (B, 2)."""
    corners = points[:, 64] - points[:, 60]
    normal = torch.stack([-corners[:, 1], corners[:, 0]], dim=-1)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    normal = normal * torch.where(((points[:, 57] - points[:, 51]) * normal).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    return ((points[:, _LOWER_INNER] - points[:, _UPPER_INNER]) * normal[:, None]).sum(-1), normal


def lips_apart(source: torch.Tensor, target: torch.Tensor, share: float = LIPS_APART) -> torch.Tensor:
    """``target`` (B, 68, 2) with each inner-lip pair at least ``share`` of ``source``'s gap apart across the mouth
    (``LIPS_APART``; never more apart than the photo's own pair), both points moved by half the shortfall."""
    photo, _ = _across_the_mouth(source)
    across, normal = _across_the_mouth(target)
    least = torch.minimum(share * photo, photo)
    push = (least - across).clamp_min(0)[..., None] / 2 * normal[:, None]
    out = target.clone()
    out[:, _UPPER_INNER] -= push
    out[:, _LOWER_INNER] += push
    return out


def border_anchors(size: float, per_side: int = BORDER_ANCHORS_PER_SIDE) -> torch.Tensor:
    """Points along the border of a ``size``-pixel square image, as (x, y): (4 * (per_side - 1), 2)."""
    edge = torch.linspace(0.0, size - 1.0, per_side, dtype=torch.float64)
    last = torch.full_like(edge, size - 1.0)
    first = torch.zeros_like(edge)
    ring = torch.cat([torch.stack([edge, first], 1), torch.stack([last, edge], 1),
                      torch.stack([edge.flip(0), last], 1), torch.stack([first, edge.flip(0)], 1)])
    return torch.unique_consecutive(ring, dim=0)[:-1]


def _kernel(squared_distances: torch.Tensor) -> torch.Tensor:
    """The thin-plate radial basis U(r) = r^2 log r^2, with U(0) = 0."""
    return squared_distances * torch.log(squared_distances.clamp_min(1e-20))


def fit_thin_plate_spline(control: torch.Tensor, values: torch.Tensor, regularization: float = REGULARIZATION
                          ) -> torch.Tensor:
    """Coefficients (B, N + 3, 2) of the splines taking ``control`` (B, N, 2) onto ``values`` (B, N, 2)."""
    b, n, _ = control.shape
    kernel = _kernel(torch.cdist(control, control).square())
    kernel = kernel + regularization * torch.eye(n, dtype=control.dtype, device=control.device)
    affine = torch.cat([torch.ones(b, n, 1, dtype=control.dtype, device=control.device), control], dim=2)
    system = torch.zeros(b, n + 3, n + 3, dtype=control.dtype, device=control.device)
    system[:, :n, :n], system[:, :n, n:], system[:, n:, :n] = kernel, affine, affine.transpose(1, 2)
    rhs = torch.cat([values, torch.zeros(b, 3, 2, dtype=control.dtype, device=control.device)], dim=1)
    return torch.linalg.solve(system, rhs)


def evaluate_thin_plate_spline(control: torch.Tensor, coefficients: torch.Tensor, query: torch.Tensor
                               ) -> torch.Tensor:
    """The splines of ``fit_thin_plate_spline`` at ``query`` (B, M, 2) -> (B, M, 2), in ``EVALUATION_DTYPE``.

    The fit needs float64 (a closed mouth's inner lips nearly coincide); evaluating it does not. In
    float32 the map of an avatar's 640 px bank moved by at most 0.55 of its pixels (a quarter of an
    output pixel at 256 px, on a mouth shut exactly) and cost 0.55 of float64's time.

    The kernel over a 128 x 128 grid and ~90 control points is the warp's largest cost, so it is
    evaluated ``SPLINE_CHUNK`` query points at a time, each chunk's squared distances one small matrix
    product (``|q|^2 + |c|^2 - 2 q.c``) and its kernel computed in place while it is in the cache:
    5.7x faster than ``cdist`` and separate passes over the whole (B, M, N) kernel, and within 1e-5 of
    it (``benchmarks/bench_warp.py``). In place, so for maps only (no gradient flows through a map).
    """
    n = control.shape[1]
    control, coefficients = control.to(EVALUATION_DTYPE), coefficients.to(EVALUATION_DTYPE)
    query = query.to(EVALUATION_DTYPE)
    ones = torch.ones_like(query[..., :1])
    lifted_query = torch.cat([query, query.square().sum(-1, keepdim=True), ones], dim=-1)  # (B, M, 4)
    lifted_control = torch.cat([-2 * control, torch.ones_like(control[..., :1]),
                                control.square().sum(-1, keepdim=True)], dim=-1).transpose(1, 2)  # (B, 4, N)
    weights, affine = coefficients[:, :n], coefficients[:, n:]
    out = query.new_empty(query.shape)
    for start in range(0, query.shape[1], SPLINE_CHUNK):
        chunk = slice(start, start + SPLINE_CHUNK)
        basis = torch.bmm(lifted_query[:, chunk], lifted_control).clamp_min_(1e-20)  # squared distances
        basis = torch.log(basis).mul_(basis)  # U(r) = r^2 log r^2; U(0) = 0 up to 1e-20 * log(1e-20)
        out[:, chunk] = torch.baddbmm(torch.baddbmm(affine[:, :1], query[:, chunk], affine[:, 1:]), basis, weights)
    return out


#: (margin, side) of the output crop inside a square source, in source pixels: the output crop is the
#: source's centre ``side`` pixels, with ``margin`` pixels of the photo around it to sample from.
CropFrame = tuple[float, float]


@torch.no_grad()
def sampling_map(source_points: torch.Tensor, target_points: torch.Tensor, source_size: int, out_size: int,
                 frame: CropFrame | None = None, grid_size: int = GRID_SIZE) -> torch.Tensor:
    """Where each output pixel samples the source: (B, out, out, 2) source pixel coordinates.

    ``source_points`` are in the pixels of the ``source_size`` square source; ``target_points`` in the
    pixels of the ``out_size`` square output. Both are (B, 68, 2) landmarks of one crop convention, whose
    crop is the source's centre ``frame`` (default: the whole source). The border anchors sit on that
    crop's border: a source with a margin lets a head that moves down or sideways show the photo's own
    hair and background from beyond the crop, instead of its repeated edge. ``grid_size``: the side of
    the grid the spline is evaluated on (``GRID_SIZE``; live mode trades a coarser one for time).
    """
    with torch.autocast(source_points.device.type, enabled=False):  # a spline is solved in float64, always
        return _sampling_map(source_points, target_points, source_size, out_size, frame or (0.0, source_size),
                             grid_size)


def _sampling_map(source_points: torch.Tensor, target_points: torch.Tensor, source_size: int, out_size: int,
                  frame: CropFrame, grid_size: int) -> torch.Tensor:
    margin, side = frame
    scale = side / out_size
    src = source_points.double()
    dst = lips_apart(src, target_points.double() * scale + margin)  # the output frame in source pixels
    teeth_src, teeth_dst = teeth_points(src, dst)
    src, dst = torch.cat([src, teeth_src], 1), torch.cat([dst, teeth_dst], 1)
    anchors = (border_anchors(side) + margin).to(src.device)[None].expand(src.shape[0], -1, -1)
    src, dst = torch.cat([src, anchors], 1) / source_size, torch.cat([dst, anchors], 1) / source_size
    coefficients = fit_thin_plate_spline(dst, src)
    grid = min(out_size, grid_size)
    axis = (torch.linspace(0.0, (out_size - 1) * scale, grid, dtype=torch.float64, device=src.device) + margin
            ) / source_size
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    query = torch.stack([xs, ys], dim=-1).reshape(1, -1, 2).expand(src.shape[0], -1, -1)
    mapped = evaluate_thin_plate_spline(dst, coefficients, query).reshape(-1, grid, grid, 2) * source_size
    if grid != out_size:
        mapped = F.interpolate(mapped.permute(0, 3, 1, 2).contiguous(), size=(out_size, out_size), mode="bilinear",
                               align_corners=True).permute(0, 2, 3, 1)
    return mapped.float()


def sample(images: torch.Tensor, pixel_map: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample (B, C, H, W) ``images`` at (B, h, w, 2) pixel coordinates; outside, the border repeats.

    On the CPU, with no gradient wanted, OpenCV's ``remap`` does it (``_remap``); otherwise ``grid_sample``.
    """
    if _remap_applies(images, mode):
        return _remap(images, pixel_map, mode)
    height, width = images.shape[-2:]
    scale = torch.tensor([2.0 / width, 2.0 / height], device=pixel_map.device)
    grid = (pixel_map + 0.5) * scale - 1.0  # pixel centres, align_corners=False
    out = F.grid_sample(images, grid.to(images.dtype), mode=mode, padding_mode="border", align_corners=False)
    return out.clamp(-1, 1) if mode == "bicubic" else out


#: OpenCV's interpolation for each ``grid_sample`` mode it can stand in for (the same kernels: bicubic
#: with a = -0.75 in both).
_REMAP_MODES = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}
#: OpenCV's maps are indexed with 16-bit integers: taller maps are sampled in slices.
_REMAP_MAX_ROWS = 16384


def _remap_applies(images: torch.Tensor, mode: str) -> bool:
    return (images.device.type == "cpu" and images.dtype == torch.float32 and images.shape[1] <= 4
            and mode in _REMAP_MODES and not (torch.is_grad_enabled() and images.requires_grad))


def _remap(images: torch.Tensor, pixel_map: torch.Tensor, mode: str) -> torch.Tensor:
    """``sample`` by ``cv2.remap``, image by image: 3x faster than ``grid_sample`` on this project's CPU at
    bicubic (``benchmarks/bench_warp.py``), and the same up to OpenCV's 1/32-pixel steps of position
    (``tests/test_warp.py``). ``images`` may be one image for all maps (B = 1) or one per map."""
    pictures = images.detach().permute(0, 2, 3, 1).contiguous().numpy()  # (B, H, W, C), as OpenCV wants
    maps = pixel_map.detach().float().contiguous().numpy()
    out = np.empty((len(maps), *maps.shape[1:3], images.shape[1]), np.float32)
    for index, where in enumerate(maps):
        picture = pictures[index if len(pictures) > 1 else 0]
        for top in range(0, len(where), _REMAP_MAX_ROWS):
            rows = slice(top, top + _REMAP_MAX_ROWS)
            out[index, rows] = cv2.remap(picture, where[rows], None, _REMAP_MODES[mode],
                                         borderMode=cv2.BORDER_REPLICATE).reshape(out[index, rows].shape)
    result = torch.from_numpy(out).permute(0, 3, 1, 2)
    return result.clamp(-1, 1) if mode == "bicubic" else result


def warp_to_landmarks(images: torch.Tensor, source_points: torch.Tensor, target_points: torch.Tensor,
                      out_size: int, mode: str = "bilinear", frame: CropFrame | None = None) -> torch.Tensor:
    """Warp square source ``images`` (B, C, S, S) in [-1, 1] so ``source_points`` land on ``target_points``.

    One sampling of the source at the output's resolution: a 512 px source warped to a 256 px output
    keeps the source's detail (resizing first, then warping, would blur it twice). ``frame``: see
    ``sampling_map``.
    """
    pixel_map = sampling_map(source_points, target_points, images.shape[-1], out_size, frame)
    return sample(images, pixel_map, mode)
