"""Rendering of the synthetic talking heads: a ray-cast 3D head, shaded by a light fixed in the world,
with the moving features (eyes, lids, brows, lips, mouth interior) painted from the exact landmarks.

Why this split: everything that belongs to the *surface* (skin colour and pores, cheek blush, eye
sockets, hair) lives in a texture in head-local coordinates and is looked up at the ray's hit point,
so it rotates, foreshortens and turns out of view like a real head; everything that *moves* relative
to the skull (lids, lips, brows, mouth interior) is filled from the posed, projected landmarks with
anti-aliased polygons, so the landmarks are exact by construction. All per-pixel work is batched over
frames in torch; the polygon masks are cv2 fills at sub-pixel precision.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talking_head.data.synthetic_face import Ellipsoid, Identity, Motion, Rays, Vec, ray_cast, tensor32
# The framing contract is the landmarks crop box's (real photos are cropped with it): the 68-point
# bbox's larger side is FACE_FRACTION of the image side, its centre VERTICAL_OFFSET below the middle.
from talking_head.landmarks.align import FACE_FRACTION
from talking_head.landmarks.align import VERTICAL_OFFSET as FACE_CENTER_DROP

#: Head-local window covered by the skin/hair textures (face units).
_TEX_X, _TEX_Y = (-0.85, 0.85), (-0.55, 1.35)
_SHIFT = 4  # cv2 fractional bits


@dataclass(frozen=True)
class Camera:
    """Per-frame weak-perspective camera: world (x, y) * scale + offset = pixel (x, y)."""
    rotation: np.ndarray  # (T, 3, 3) head-local -> world
    pivot: np.ndarray     # (3,) rotation centre (head centre), head-local = world at rest
    scale: float          # pixels per face unit
    offset: np.ndarray    # (T, 2) pixel position of world (0, 0)


def make_camera(identity: Identity, motion: Motion, rotation: np.ndarray, image_size: int) -> Camera:
    """Frame the face by the contract: frontal bbox of the 68 points = FACE_FRACTION of the side,
    its centre horizontally centred and FACE_CENTER_DROP of the side below the image centre."""
    xy = identity.layout[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    scale = FACE_FRACTION * image_size / (hi - lo).max() * motion.scale
    target = np.array([0.5, 0.5 + FACE_CENTER_DROP]) * image_size + motion.shift * image_size
    # Pixel centres sit at integer coordinates (the cv2/dlib convention).
    offset = target - 0.5 - scale * 0.5 * (lo + hi)
    return Camera(rotation, np.array(identity.cranium.center), scale, offset)


def project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """(T, N, 3) head-local points -> (T, N, 2) pixel coordinates."""
    world = np.einsum("tij,tnj->tni", camera.rotation, points - camera.pivot) + camera.pivot
    return world[..., :2] * camera.scale + camera.offset[:, None]


def _noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth value noise in [-1, 1]: a small random grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC), -1, 1)


@dataclass(frozen=True)
class Textures:
    skin: torch.Tensor        # (3, h, w) albedo in head-local (x, y)
    hair: torch.Tensor        # (3, h, w)
    background: torch.Tensor  # (3, S + 2m, S + 2m)
    margin: int


def make_textures(identity: Identity, image_size: int) -> Textures:
    """Per-identity albedo maps: skin with blotches, pores, blush and eye-socket shadows; strand-like
    hair; a soft indoor-looking background. Seeded by the identity, so every video shares them."""
    rng = np.random.default_rng(identity.texture_seed)
    h = w = max(64, image_size)
    size = (h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lx = _TEX_X[0] + xx / (w - 1) * (_TEX_X[1] - _TEX_X[0])
    ly = _TEX_Y[0] + yy / (h - 1) * (_TEX_Y[1] - _TEX_Y[0])
    lay = identity.layout[:, :2]

    def blob(centre: np.ndarray, rx: float, ry: float) -> np.ndarray:
        return np.exp(-(((lx - centre[0]) / rx) ** 2 + ((ly - centre[1]) / ry) ** 2))

    shade = 1.0 + 0.06 * _noise(rng, size, 6) + 0.03 * _noise(rng, size, 24)
    pores = cv2.GaussianBlur(rng.normal(0, 1, size).astype(np.float32), (0, 0), 0.6)
    shade = shade + 0.035 * pores
    sockets = sum(blob(lay[eye].mean(0) + [0, -0.01], 0.1, 0.07) for eye in (range(36, 42), range(42, 48)))
    shade = shade * (1 - rng.uniform(0.15, 0.3) * sockets)
    blush = sum(blob(lay[i, :2] * [0.75, 1] + [0, -0.02], 0.1, 0.08) for i in (3, 13))
    mouth_ring = blob(lay[48:60, :2].mean(0), 0.17, 0.12)
    skin = identity.skin[None, None] * shade[..., None]
    skin = skin * (1 - rng.uniform(0.0, 0.12) * blush[..., None] * np.array([0, 1, 1]))
    skin = skin * (1 - 0.05 * mouth_ring[..., None])
    if rng.random() < 0.25:  # stubble: a darker, speckled lower face
        beard = np.clip((ly - lay[30, 1]) / 0.08, 0, 1) * (np.abs(lx) < np.abs(lay[2, 0]))
        beard = beard * (0.6 + 0.4 * (rng.random(size) > 0.5))
        skin = skin * (1 - rng.uniform(0.1, 0.3) * beard[..., None])

    streaks = cv2.GaussianBlur(rng.normal(0, 1, size).astype(np.float32), (0, 0), sigmaX=0.7, sigmaY=5.0)
    streaks = streaks / (streaks.std() + 1e-6)
    hair = identity.hair[None, None] * (1 + 0.22 * streaks[..., None] + 0.15 * _noise(rng, size, 5)[..., None])

    margin = max(2, image_size // 16)
    side = image_size + 2 * margin
    by, bx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    base, accent1, accent2 = identity.background
    bg = base[None, None] * (0.75 + 0.5 * (1 - by))[..., None]
    for accent in (accent1, accent2):
        cx, cy, rx, ry = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.6)
        box = ((np.abs(bx - cx) < rx) & (np.abs(by - cy) < ry)).astype(np.float32)
        box = cv2.GaussianBlur(box, (0, 0), side * rng.uniform(0.005, 0.04))
        bg = bg + (accent - bg) * box[..., None] * rng.uniform(0.4, 0.9)
    bg = bg * (1 + 0.08 * _noise(rng, (side, side), 8)[..., None])

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.clip(a, 0, 1).astype(np.float32)).permute(2, 0, 1).contiguous()

    return Textures(to_tensor(skin), to_tensor(hair), to_tensor(bg), margin)


def _lookup(texture: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup at head-local (x, y) of shape (T, H, W) -> (T, 3, H, W)."""
    gx = (x - _TEX_X[0]) / (_TEX_X[1] - _TEX_X[0]) * 2 - 1
    gy = (y - _TEX_Y[0]) / (_TEX_Y[1] - _TEX_Y[0]) * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx, gy), -1)
    return F.grid_sample(texture[None].expand(len(grid), -1, -1, -1), grid, mode="bilinear",
                         padding_mode="border", align_corners=True)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


def _u8(colour) -> tuple[float, float, float]:
    return tuple(float(c) for c in np.clip(np.asarray(colour) * 255.0, 0, 255))


def _feature_layers(lm: np.ndarray, shapes: dict[str, np.ndarray], identity: Identity, size: int, scale: float
                    ) -> np.ndarray:
    """Draw the landmark-driven features per frame: (T, S, S, 6) uint8 = premultiplied feature colour
    (3), its coverage (1), the jaw clip mask (1) and the nostrils (1).

    Features are painted back to front with anti-aliased cv2 fills into one premultiplied layer
    (cv2's AA blending onto a black canvas *is* premultiplied "over" compositing), so the renderer
    composites them onto the skin in one step. Irises are clipped to the eye outline, so lids cover them.
    """
    t = len(lm)
    out = np.zeros((t, size, size, 6), np.uint8)
    aa, sh, one = cv2.LINE_AA, _SHIFT, 1 << _SHIFT
    lid = max(1, int(round(0.014 * scale)))
    brows, lips = _u8(0.9 * identity.brows), _u8(identity.lips)
    sclera, iris, pupil = _u8([0.9, 0.87, 0.83]), _u8(identity.iris), _u8([0.03, 0.02, 0.02])
    lash, cavity, tongue = _u8([0.08, 0.05, 0.05]), _u8([0.1, 0.03, 0.04]), _u8([0.7, 0.33, 0.36])
    teeth, lip_line = _u8([0.9, 0.88, 0.8]), _u8(identity.lips * 0.45)
    rgb, alpha = np.zeros((size, size, 3), np.uint8), np.zeros((size, size), np.uint8)
    eye_mask = np.zeros((size, size), np.uint8)
    opening = np.linalg.norm(lm[:, [37, 38, 43, 44]] - lm[:, [41, 40, 47, 46]], axis=-1).reshape(t, 2, 2).mean(-1)
    for i in range(t):
        p = _fixed(lm[i])
        rgb[:], alpha[:] = 0, 0
        # A shut eye is only its lash line: an AA fill of its flat outline would draw a white streak.
        eyes = [p[e] for e, h in ((slice(36, 42), opening[i, 0]), (slice(42, 48), opening[i, 1])) if h > 0.6]
        for colour, a, poly in ((brows, 230, [_fixed(shapes["brow_r"][i]), _fixed(shapes["brow_l"][i])]),
                                (lips, 255, [p[48:60]]), (cavity, 255, [p[60:68]]),
                                (tongue, 255, [_fixed(shapes["tongue"][i])]),
                                (teeth, 255, [_fixed(shapes["upper_teeth"][i]), _fixed(shapes["lower_teeth"][i])]),
                                (sclera, 255, eyes)):
            if not poly:
                continue
            cv2.fillPoly(rgb, poly, colour, aa, sh)
            cv2.fillPoly(alpha, poly, a, aa, sh)
        cv2.polylines(rgb, [p[[48, 60, 61, 62, 63, 64, 54]]], False, lip_line, 1, aa, sh)
        # Irises, pupils and catchlights, clipped to the eye outlines (within the eyes' bounding box).
        x0, y0 = np.floor(lm[i, 36:48].min(0)).astype(int).clip(0, size - 1)
        x1, y1 = (np.ceil(lm[i, 36:48].max(0)).astype(int) + 2).clip(1, size)
        before = rgb[y0:y1, x0:x1].astype(np.float32)
        eye_mask[y0:y1, x0:x1] = 0
        if eyes:
            cv2.fillPoly(eye_mask, eyes, 255, aa, sh)
        for c, r in zip(shapes["irises"][i], shapes["iris_radius"][i]):
            centre = tuple(_fixed(c))
            cv2.circle(rgb, centre, int(r * one), iris, -1, aa, sh)
            cv2.circle(rgb, centre, int(0.42 * r * one), pupil, -1, aa, sh)
            cv2.circle(rgb, tuple(_fixed(c + [0.35 * r, -0.35 * r])), int(0.2 * r * one), (235, 235, 235), -1, aa, sh)
        keep = eye_mask[y0:y1, x0:x1, None].astype(np.float32) / 255.0
        rgb[y0:y1, x0:x1] = (before + keep * (rgb[y0:y1, x0:x1] - before) + 0.5).astype(np.uint8)
        cv2.polylines(rgb, [p[36:40], p[42:46]], False, lash, lid, aa, sh)
        cv2.polylines(alpha, [p[36:40], p[42:46]], False, 255, lid, aa, sh)
        o = out[i]
        o[..., :3], o[..., 3] = rgb, alpha
        clip, nostrils = np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8)
        cv2.fillPoly(clip, [_fixed(shapes["clip"][i])], 255, aa, sh)
        for centre, axes in zip(shapes["nostrils"][i], shapes["nostril_axes"][i]):
            cv2.ellipse(nostrils, tuple(_fixed(centre)), tuple(_fixed(axes)), float(shapes["angle"][i]), 0, 360,
                        255, -1, aa, sh)
        o[..., 4], o[..., 5] = clip, nostrils
    return out


def _feature_geometry(lm: np.ndarray, eyes3d: np.ndarray, camera: Camera, identity: Identity,
                      motion: Motion) -> dict[str, np.ndarray]:
    """Screen-space shapes derived from the landmarks: jaw clip polygon, brow outlines, teeth, tongue,
    nostrils, irises (iris centres are 3D points in front of the eyeballs, so gaze follows the head)."""
    rot = camera.rotation
    down = rot[:, :2, 1]                      # projected head-down axis (unit length at yaw 0)
    down = down / np.linalg.norm(down, axis=-1, keepdims=True)
    right = np.stack([down[:, 1], -down[:, 0]], -1)  # towards image x+ for an upright head
    far = 10.0 * camera.scale
    jaw = lm[:, 0:17]
    out0 = jaw[:, 0] - right * far
    out16 = jaw[:, 16] + right * far
    clip = np.concatenate([out0[:, None], jaw, out16[:, None], (out16 + down * far)[:, None],
                           (out0 + down * far)[:, None]], 1)

    thick = identity.brow_thickness * camera.scale
    profile = np.array([0.55, 0.85, 1.0, 1.0, 0.9])
    brows = {}
    for name, idx in (("brow_r", np.arange(17, 22)), ("brow_l", np.arange(26, 21, -1))):
        line = lm[:, idx]
        w = thick * profile[None, :, None] * (1 + 0.15 * motion.brows[:, None, None])
        upper = line - down[:, None] * w * 0.25
        lower = line + down[:, None] * w * 0.85
        brows[name] = np.concatenate([upper, lower[:, ::-1]], 1)

    # Teeth and tongue are blends of the upper and lower inner-lip lines, so they stay inside the mouth.
    upper_lip = lm[:, [60, 61, 62, 63, 64]]
    lower_lip = lm[:, [60, 67, 66, 65, 64]]
    opening = np.linalg.norm(lm[:, 66] - lm[:, 62], axis=-1)[:, None, None]
    reach = np.clip(0.035 * camera.scale / np.maximum(opening, 1e-3), 0.0, 0.3)
    upper_teeth = np.concatenate([upper_lip, (upper_lip + reach * (lower_lip - upper_lip))[:, ::-1]], 1)
    lower_teeth = np.concatenate([lower_lip, (lower_lip + 0.3 * reach * (upper_lip - lower_lip))[:, ::-1]], 1)
    tongue = np.concatenate([lower_lip[:, 1:4], (lower_lip + 0.4 * (upper_lip - lower_lip))[:, 3:0:-1]], 1)

    nostrils = np.stack([0.5 * (lm[:, 31] + lm[:, 32]), 0.5 * (lm[:, 34] + lm[:, 35])], 1)
    nostrils = nostrils - down[:, None] * 0.012 * camera.scale
    nose_w = np.linalg.norm(lm[:, 35] - lm[:, 31], axis=-1)
    axes = np.stack([0.17 * nose_w, 0.08 * nose_w], -1)[:, None].repeat(2, 1)
    angle = np.degrees(np.arctan2(right[:, 1], right[:, 0]))

    irises = project(eyes3d, camera)
    eye_w = np.linalg.norm(lm[:, [39, 45]] - lm[:, [36, 42]], axis=-1)
    return dict(clip=clip, upper_teeth=upper_teeth, lower_teeth=lower_teeth, tongue=tongue, nostrils=nostrils,
                nostril_axes=axes, angle=angle, irises=irises, iris_radius=0.24 * eye_w, **brows)


def _egg_hit(rays: Rays, upper: Ellipsoid, lower: Ellipsoid, px_radius: float
             ) -> tuple[torch.Tensor, torch.Tensor, Vec, torch.Tensor]:
    """First hit of rays with the egg-shaped head: the upper half of one ellipsoid joined at the
    equator (y = centre) to the lower half of another. Each half is convex (ellipsoid ∩ half-space),
    so its entry is the later of the two entries, valid if before the earlier exit.

    Returns (t, coverage in [0, 1] with an anti-aliased silhouette, hit point, hit is on the upper half).
    """
    y0, oy = upper.center[1], rays.at(0.0, (1,))[0]
    dy = np.where(np.abs(rays.d[1]) < 1e-6, 1e-6, rays.d[1])
    t_plane = (y0 - oy) * tensor32(1.0 / dy)
    best_t = best_cov = best_upper = None
    for ell, is_upper in ((upper, True), (lower, False)):
        t_in, t_out, disc = ray_cast(rays, ell)
        # Per frame, the ray either leaves this half-space at t_plane or enters it there.
        leaving = tensor32(((dy > 0) == is_upper) * 1e9)
        entry = torch.maximum(t_in, t_plane - leaving)
        valid = (disc > 0) & (entry < torch.minimum(t_out, t_plane + (1e9 - leaving)))
        mid_y = oy + (0.5 * (t_in + t_out)) * tensor32(dy)
        near_edge = (disc <= 0) & ((mid_y < y0) if is_upper else (mid_y >= y0))
        cov = (0.5 + 0.5 * px_radius * disc).clamp_(0, 1) * (valid | near_edge)
        t = entry.masked_fill_(~valid, float("inf"))
        if best_t is None:
            best_t, best_cov, best_upper = t, cov, valid
        else:
            best_upper = best_upper & (best_t <= t)
            best_t, best_cov = torch.minimum(best_t, t), torch.maximum(best_cov, cov)
    finite = best_t.masked_fill(torch.isinf(best_t), 0.0)
    return best_t, best_cov, rays.at(finite), best_upper


def _normalize(v: Vec) -> Vec:
    inv = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).clamp(min=1e-12).rsqrt()
    return v[0] * inv, v[1] * inv, v[2] * inv


def _dot(v: Vec, w) -> torch.Tensor:
    return v[0] * w[0] + v[1] * w[1] + v[2] * w[2]


def _ellipsoid_frame(p: Vec, upper: torch.Tensor, identity_halves: tuple[Ellipsoid, Ellipsoid]) -> tuple[Vec, Vec]:
    """Unit-sphere coordinates and the outward normal of points on an egg (both halves share a centre)."""
    up, low = identity_halves
    radii = [torch.where(upper, torch.tensor(float(ru)), torch.tensor(float(rl)))
             for ru, rl in zip(up.radii, low.radii)]
    unit = tuple((pc - c) / r for pc, c, r in zip(p, up.center, radii))
    return unit, _normalize(tuple(u / r for u, r in zip(unit, radii)))


def _head_crop(identity: Identity, camera: Camera, size: int) -> tuple[int, int, int, int]:
    """Pixel box (y0, y1, x0, x1) holding the head and its hair in every frame: ray casting and
    shading only run there."""
    reach = max(identity.cranium.radii + identity.jaw.radii) * (1 + identity.hair_volume) + 0.05
    centre = project(np.broadcast_to(np.array(identity.cranium.center), (len(camera.rotation), 1, 3)), camera)[:, 0]
    lo = np.floor((centre - reach * camera.scale).min(0)).astype(int)
    hi = np.ceil((centre + reach * camera.scale).max(0)).astype(int) + 1
    x0, y0 = np.clip(lo, 0, size)
    x1, y1 = np.clip(hi, 0, size)
    return int(y0), int(max(y1, y0 + 1)), int(x0), int(max(x1, x0 + 1))


def _part_box(ell: Ellipsoid, camera: Camera, crop_box: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """(rows, cols) of the head crop that an ellipsoid can cover in any of the camera's frames."""
    y0, y1, x0, x1 = crop_box
    centre = project(np.broadcast_to(np.array(ell.center), (len(camera.rotation), 1, 3)), camera)[:, 0]
    reach = max(ell.radii) * camera.scale + 2
    lo = np.floor(centre.min(0) - reach).astype(int) - (x0, y0)
    hi = np.ceil(centre.max(0) + reach).astype(int) + 1 - (x0, y0)
    (c0, r0), (c1, r1) = np.clip(lo, 0, (x1 - x0, y1 - y0)), np.clip(hi, 0, (x1 - x0, y1 - y0))
    return slice(int(r0), int(max(r1, r0))), slice(int(c0), int(max(c1, c0)))


def _rgb(colour) -> torch.Tensor:
    return torch.as_tensor(np.asarray(colour, np.float32)).view(1, 3, 1, 1)


def render(identity: Identity, motion: Motion, points: np.ndarray, camera: Camera, image_size: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Render frames (T, S, S, 3) uint8 of the posed head and return them with the exact landmarks."""
    s, t = image_size, len(points)
    lm = project(points, camera)
    eyes3d = np.stack([points[:, 36:42].mean(1), points[:, 42:48].mean(1)], 1)
    eyes3d = eyes3d + np.concatenate([motion.gaze, np.full((t, 1), 0.012)], -1)[:, None]
    shapes = _feature_geometry(lm, eyes3d, camera, identity, motion)
    tex = make_textures(identity, s)
    y0, y1, x0, x1 = _head_crop(identity, camera, s)
    layers = _feature_layers(lm, shapes, identity, s, camera.scale)[:, y0:y1, x0:x1]
    # Chunks of frames keep every per-pixel tensor small (a few hundred kB): big temporaries cost
    # fresh memory mappings and page faults on every operation, which made batches 10x slower.
    chunk = max(1, (8 * 128 * 128) // (s * s))
    frames = np.empty((t, s, s, 3), np.uint8)
    with _single_thread():
        for a in range(0, t, chunk):
            part = slice(a, a + chunk)
            frames[part] = _render_frames(identity, motion, Camera(camera.rotation[part], camera.pivot, camera.scale,
                                                                   camera.offset[part]),
                                          lm[part], layers[part], tex, (y0, y1, x0, x1), s)
    return frames, lm.astype(np.float32)


@contextmanager
def _single_thread():
    """Run torch on one thread for the duration. The rendering ops are small (a chunk of frames
    each), so intra-op threads only add synchronisation; on a busy 2-core machine two threads were
    3-10x slower than one. Parallelism belongs to processes (one video per worker)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _render_frames(identity: Identity, motion: Motion, camera: Camera, lm: np.ndarray, layers: np.ndarray,
                   tex: Textures, crop_box: tuple[int, int, int, int], s: int) -> np.ndarray:
    """Ray-cast, shade and composite a few frames (T, S, S, 3) uint8, given their feature layers: the head, then
    in front of the background and body, the ears where the head does not hide them, then the hair's volume."""
    y0, y1, x0, x1 = crop_box
    layers = torch.from_numpy(layers).permute(0, 3, 1, 2).float().div_(255.0)
    wx, wy, rays = _pixel_rays(camera, crop_box, s)
    scene = _Scene(identity, motion, camera, crop_box, rays, *_local_light(camera, motion))
    head = _head_surface(scene)
    head_colour = _head_colour(scene, head, layers, tex)
    head_a = head.coverage.unsqueeze(1) * (1 - layers[:, 4:5])  # the mouth's clip layer cuts the head open
    img = _body_and_background(identity, motion, camera, lm, tex, (wx, wy), s)
    crop = img[:, :, y0:y1, x0:x1]
    crop.lerp_(head_colour, head_a)
    t_front = _draw_ears(scene, crop, head.t, head_a)
    _draw_hair_shell(scene, crop, tex, head.t, t_front)
    return img.clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@dataclass(frozen=True)
class _Scene:
    """What each stage of a chunk's rendering reads: the person, the motion, the camera, the head crop's rays and
    the light in head-local coordinates (per frame)."""
    identity: Identity
    motion: Motion
    camera: Camera
    crop_box: tuple[int, int, int, int]
    rays: Rays
    light: Vec  # towards the light
    half: Vec   # halfway between the light and the camera (the specular highlight's direction)


@dataclass(frozen=True)
class _HeadHit:
    """Where the rays meet the head (the egg of cranium and jaw, with the nose blended into it)."""
    t: torch.Tensor          # (T, H, W) ray parameter of the hit, inf where missed
    coverage: torch.Tensor   # (T, H, W) in [0, 1], an anti-aliased silhouette
    point: Vec               # the hit point on the egg, head-local
    unit: Vec                # the hit point on the unit sphere (where the hairline is decided)
    normal: Vec              # the surface normal, the nose's blended in
    surface: tuple[torch.Tensor, torch.Tensor]  # (x, y) of the skin texture's lookup, the nose's blended in
    nose_weight: torch.Tensor  # (T, H, W) how much of each pixel is the nose


def _pixel_rays(camera: Camera, crop_box: tuple[int, int, int, int], s: int
                ) -> tuple[torch.Tensor, torch.Tensor, Rays]:
    """World x (T, 1, S) and y (T, S, 1) of every pixel centre, and the head-local rays through the head crop."""
    y0, y1, x0, x1 = crop_box
    pivot = camera.pivot
    off = torch.from_numpy(camera.offset).float()
    wx = (torch.arange(s, dtype=torch.float32)[None, None, :] - off[:, 0, None, None]) / camera.scale  # (T, 1, S)
    wy = (torch.arange(s, dtype=torch.float32)[None, :, None] - off[:, 1, None, None]) / camera.scale  # (T, S, 1)
    cx, cy = wx[:, :, x0:x1] - pivot[0], wy[:, y0:y1] - pivot[1]
    rn = camera.rotation[:, :, :, None, None]          # local = R^T (world - pivot) + pivot
    rays = Rays(cx, cy, tuple(rn[:, 0, k] for k in range(3)), tuple(rn[:, 1, k] for k in range(3)),
                tuple(rn[:, 2, k] * (5.0 - pivot[2]) + pivot[k] for k in range(3)),
                tuple(-rn[:, 2, k] for k in range(3)))
    return wx, wy, rays


def _local_light(camera: Camera, motion: Motion) -> tuple[Vec, Vec]:
    """The world's light, and the half vector between it and the camera, in head-local coordinates per frame."""
    rot = torch.from_numpy(camera.rotation).float()
    light_local = torch.einsum("tij,i->tj", rot, torch.from_numpy(motion.light).float())[:, :, None, None]
    view_local = rot[:, 2, :, None, None]              # towards the camera, head-local
    half_local = _normalize(tuple(light_local[:, k] + view_local[:, k] for k in range(3)))
    return tuple(light_local[:, k] for k in range(3)), half_local


def _head_px_radius(identity: Identity, camera: Camera) -> float:
    """The head's radius in pixels, the scale of its anti-aliased silhouette."""
    return camera.scale * 0.5 * (identity.cranium.radii[0] + identity.cranium.radii[1])


def _head_surface(scene: _Scene) -> _HeadHit:
    """The egg of cranium and jaw, with the nose blended into it over a few pixels of depth so that it reads as
    one surface. The nose is ray-cast only in the box its bounding sphere projects to."""
    identity, camera = scene.identity, scene.camera
    halves = (identity.cranium, identity.jaw)
    t_head, cov_head, p_head, upper = _egg_hit(scene.rays, *halves, _head_px_radius(identity, camera))
    unit, n_head = _ellipsoid_frame(p_head, upper, halves)
    nose = identity.nose
    rows, cols = _part_box(nose, camera, scene.crop_box)
    near = scene.rays.crop(rows, cols)
    t_n, _, disc_n = ray_cast(near, nose)
    depth_gap = (t_head[:, rows, cols].clamp(max=1e3) - t_n) * camera.scale
    w = (depth_gap * 0.35).clamp(0, 1) * (0.5 + 0.5 * disc_n * camera.scale * 0.08).clamp(0, 1)
    p_nose = near.at(t_n.clamp(max=1e3))
    c_, s_ = float(np.cos(nose.tilt)), float(np.sin(nose.tilt))
    qx, qy, qz = (pc - c for pc, c in zip(p_nose, nose.center))
    qy, qz = c_ * qy - s_ * qz, s_ * qy + c_ * qz           # into the nose's tilted frame (as ray_cast)
    gx, gy, gz = qx / nose.radii[0] ** 2, qy / nose.radii[1] ** 2, qz / nose.radii[2] ** 2
    n_nose = _normalize((gx, c_ * gy + s_ * gz, -s_ * gy + c_ * gz))
    nose_w = torch.zeros_like(t_head)
    nose_w[:, rows, cols] = w
    normal = tuple(c.clone() for c in n_head)
    for k, blended in enumerate(_normalize(tuple(a[:, rows, cols] + w * (b - a[:, rows, cols])
                                                 for a, b in zip(n_head, n_nose)))):
        normal[k][:, rows, cols] = blended
    surface_x, surface_y = p_head[0].clone(), p_head[1].clone()
    surface_x[:, rows, cols] += w * (p_nose[0] - surface_x[:, rows, cols])
    surface_y[:, rows, cols] += w * (p_nose[1] - surface_y[:, rows, cols])
    return _HeadHit(t_head, cov_head, p_head, unit, normal, (surface_x, surface_y), nose_w)


def _hair_alpha(identity: Identity, u: Vec, soft: float, limit: float, side_depth: float) -> torch.Tensor:
    """Hair above a (temple-curved) hairline, and on the sides/back of the skull down to ``limit``;
    below the equator only at the sides (hair hangs beside the face, never under the chin)."""
    front = (identity.hairline + identity.hairline_curve * u[0] * u[0] - u[1]) * soft
    side = torch.minimum((side_depth - u[2]) * soft, (limit - u[1]) * soft)
    side = torch.minimum(side, (u[0] * u[0] - 0.5 - 4 * u[1]) * soft)
    return torch.maximum(front, side).add(0.5).clamp(0, 1)


def _head_colour(scene: _Scene, head: _HeadHit, layers: torch.Tensor, tex: Textures) -> torch.Tensor:
    """The head's shaded colour (T, 3, H, W): skin and hair from the textures, the landmark-driven features
    (premultiplied; the nose hides what is behind it when the head turns), diffuse light and a highlight."""
    identity, motion = scene.identity, scene.motion
    shade = (motion.ambient + (1 - motion.ambient) * _dot(head.normal, scene.light).clamp(min=0)).unsqueeze(1)
    spec = _dot(head.normal, scene.half).clamp_(min=0)
    for _ in range(4):   # ** 16 by squaring: pow is ten times slower
        spec = spec * spec
    spec = (spec * 0.1).unsqueeze(1)
    soft = scene.camera.scale * 0.6
    hair = _hair_alpha(identity, head.unit, soft, min(identity.hair_length, 0.3), identity.hair_side)
    hair_head = (hair * (1 - head.nose_weight)).unsqueeze(1)
    albedo = _lookup(tex.skin, *head.surface).lerp_(_lookup(tex.hair, head.point[0], head.point[1]), hair_head)
    features, coverage, nostrils = layers[:, :3], layers[:, 3:4], layers[:, 5:6]
    front = 1 - head.nose_weight.unsqueeze(1)
    albedo.mul_(1 - coverage * front).add_(features * front)
    albedo.lerp_(_rgb(identity.skin * 0.25).expand_as(albedo), 0.85 * nostrils)
    return albedo.mul_(shade).add_(spec)


def _body_and_background(identity: Identity, motion: Motion, camera: Camera, lm: np.ndarray, tex: Textures,
                         world: tuple[torch.Tensor, torch.Tensor], s: int) -> torch.Tensor:
    """(T, 3, S, S): the background, shoulders, and a neck (a world-space cylinder) darkening into the chin's
    shadow. ``world``: the pixels' world x and y (``_pixel_rays``)."""
    wx, wy = world
    m0 = tex.margin
    bx, by = (int(round(v * s / 128)) for v in motion.background_shift)
    img = tex.background[:, m0 + by: m0 + by + s, m0 + bx: m0 + bx + s][None].repeat(len(lm), 1, 1, 1)
    neck_r = 0.66 * identity.cranium.radii[0]
    nx = (wx / neck_r).clamp(-1, 1)
    light = motion.light
    neck_light = motion.ambient + (1 - motion.ambient) * (nx * light[0] + (1 - nx * nx).sqrt() * light[2]).clamp(min=0)
    chin_y = torch.from_numpy((lm[:, 8, 1] - camera.offset[:, 1]) / camera.scale).float()[:, None, None]
    chin_shadow = 0.45 + 0.35 * ((wy - chin_y) / 0.25).clamp(0, 1)
    neck_a = ((1 - (wx / neck_r).abs()) * neck_r * camera.scale).clamp(0, 1) * (wy > camera.pivot[1])
    shoulder_y = float(identity.layout[8, 1]) + 0.1 + 0.25 * torch.exp(-(wx / (1.5 * neck_r)) ** 2)
    body_a = ((wy - shoulder_y) * camera.scale).clamp(0, 1)
    img.lerp_(_rgb(identity.shirt) * (0.5 + 0.5 * neck_light.unsqueeze(1)), body_a.unsqueeze(1))
    img.lerp_(_rgb(identity.skin) * (neck_light * chin_shadow).unsqueeze(1), neck_a.unsqueeze(1))
    return img


def _draw_ears(scene: _Scene, crop: torch.Tensor, t_head: torch.Tensor, head_a: torch.Tensor) -> torch.Tensor:
    """Ears drawn into ``crop``, in front of the head only where it does not hide them, so they turn into and out
    of view. Returns the ray parameter of what is in front (head or ear; inf elsewhere)."""
    identity, motion, camera = scene.identity, scene.motion, scene.camera
    ear_albedo = _rgb(identity.skin * np.array([1.0, 0.9, 0.88]))
    t_front = torch.where(head_a[:, 0] > 0.5, t_head, torch.full_like(t_head, float("inf")))
    for ear in identity.ears:
        rows, cols = _part_box(ear, camera, scene.crop_box)
        t_e, _, disc_e = ray_cast(scene.rays.crop(rows, cols), ear)
        ear_a = (0.5 + 0.5 * disc_e * camera.scale * ear.radii[1]).clamp_(0, 1) * (t_e < t_front[:, rows, cols])
        p_e = scene.rays.crop(rows, cols).at(t_e.clamp(max=1e3))
        n_e = _normalize(tuple((pc - c) / rr ** 2 for pc, c, rr in zip(p_e, ear.center, ear.radii)))
        ear_shade = motion.ambient + (1 - motion.ambient) * _dot(n_e, scene.light).clamp(min=0)
        crop[:, :, rows, cols].lerp_(ear_albedo * (0.85 * ear_shade).unsqueeze(1), ear_a.unsqueeze(1))
        t_front[:, rows, cols] = torch.minimum(t_front[:, rows, cols], t_e.masked_fill(ear_a < 0.5, float("inf")))
    return t_front


def _draw_hair_shell(scene: _Scene, crop: torch.Tensor, tex: Textures, t_head: torch.Tensor,
                     t_front: torch.Tensor) -> None:
    """Hair's volume drawn into ``crop``: a shell around the skull showing hair wherever the hair pattern says so,
    where nothing is in front of it."""
    identity, motion, camera = scene.identity, scene.motion, scene.camera
    vol = 1 + identity.hair_volume
    shells = tuple(Ellipsoid(e.center, tuple(r_ * vol for r_ in e.radii)) for e in (identity.cranium, identity.jaw))
    t_s, cov_s, p_s, upper_s = _egg_hit(scene.rays, *shells, _head_px_radius(identity, camera) * vol)
    u_s, n_s = _ellipsoid_frame(p_s, upper_s, shells)
    soft = camera.scale * 0.6
    shell_a = cov_s * _hair_alpha(identity, u_s, soft * vol, identity.hair_length, max(identity.hair_side, 0.55))
    shell_a = shell_a * (t_s < torch.minimum(t_head, t_front) + 1e-3)
    # "Wrapped" diffuse light: hair is a fuzzy volume, so its grazing edges do not go black.
    shell_shade = motion.ambient + (1 - motion.ambient) * ((_dot(n_s, scene.light) + 0.5) / 1.5).clamp(min=0)
    crop.lerp_(_lookup(tex.hair, p_s[0], p_s[1]) * shell_shade.unsqueeze(1), shell_a.unsqueeze(1))
