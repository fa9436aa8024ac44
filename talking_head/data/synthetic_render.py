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

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talking_head.data.synthetic_face import Ellipsoid, Identity, Motion, ray_cast

#: The 68-point bbox's larger side as a fraction of the image side (frontal face), and how far below
#: the image centre the bbox centre sits: the framing contract shared with the landmarks crop box.
FACE_FRACTION = 0.55
FACE_CENTER_DROP = 0.05

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


def _tex_coords(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Head-local (x, y) -> texture pixel coordinates."""
    h, w = size
    return np.stack([(xy[..., 0] - _TEX_X[0]) / (_TEX_X[1] - _TEX_X[0]) * (w - 1),
                     (xy[..., 1] - _TEX_Y[0]) / (_TEX_Y[1] - _TEX_Y[0]) * (h - 1)], -1)


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
    grid = torch.stack([gx, gy], -1)
    return F.grid_sample(texture[None].expand(len(x), -1, -1, -1), grid, mode="bilinear",
                         padding_mode="border", align_corners=True)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


def _feature_masks(lm: np.ndarray, extra: dict[str, np.ndarray], size: int, scale: float) -> np.ndarray:
    """Per-frame anti-aliased masks (T, K, S, S) of the landmark-driven features, in [0, 1].

    Order of K: jaw clip, eyes, lid lines, brows, outer lips, mouth interior, upper teeth, lower teeth,
    tongue, lip line, nostrils, irises, pupils, catchlights.
    """
    t = len(lm)
    masks = np.zeros((t, 14, size, size), np.uint8)
    aa = cv2.LINE_AA
    lid = max(1, int(round(0.014 * scale)))
    for i in range(t):
        p = _fixed(lm[i])
        m = masks[i]
        cv2.fillPoly(m[0], [_fixed(extra["clip"][i])], 255, aa, _SHIFT)
        cv2.fillPoly(m[1], [p[36:42], p[42:48]], 255, aa, _SHIFT)
        cv2.polylines(m[2], [p[36:40], p[42:46]], False, 255, lid, aa, _SHIFT)
        cv2.fillPoly(m[3], [_fixed(extra["brow_r"][i]), _fixed(extra["brow_l"][i])], 255, aa, _SHIFT)
        cv2.fillPoly(m[4], [p[48:60]], 255, aa, _SHIFT)
        cv2.fillPoly(m[5], [p[60:68]], 255, aa, _SHIFT)
        cv2.fillPoly(m[6], [_fixed(extra["upper_teeth"][i])], 255, aa, _SHIFT)
        cv2.fillPoly(m[7], [_fixed(extra["lower_teeth"][i])], 255, aa, _SHIFT)
        cv2.fillPoly(m[8], [_fixed(extra["tongue"][i])], 255, aa, _SHIFT)
        cv2.polylines(m[9], [p[[48, 60, 61, 62, 63, 64, 54]]], False, 255, 1, aa, _SHIFT)
        for centre, axes in zip(extra["nostrils"][i], extra["nostril_axes"][i]):
            cv2.ellipse(m[10], tuple(_fixed(centre)), tuple(_fixed(axes)), float(extra["angle"][i]), 0, 360,
                        255, -1, aa, _SHIFT)
        for c, r in zip(extra["irises"][i], extra["iris_radius"][i]):
            cv2.circle(m[11], tuple(_fixed(c)), int(r * (1 << _SHIFT)), 255, -1, aa, _SHIFT)
            cv2.circle(m[12], tuple(_fixed(c)), int(0.42 * r * (1 << _SHIFT)), 255, -1, aa, _SHIFT)
            cv2.circle(m[13], tuple(_fixed(c + [0.35 * r, -0.35 * r])), int(0.2 * r * (1 << _SHIFT)), 255, -1,
                        aa, _SHIFT)
    return masks


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

    upper_lip = lm[:, [60, 61, 62, 63, 64]]
    lower_lip = lm[:, [64, 65, 66, 67, 60]]
    opening = np.linalg.norm(lm[:, 66] - lm[:, 62], axis=-1)[:, None, None]
    tooth = 0.05 * camera.scale
    upper_teeth = np.concatenate([upper_lip - down[:, None] * 3, (upper_lip + down[:, None] * tooth)[:, ::-1]], 1)
    lower_teeth = np.concatenate([lower_lip + down[:, None] * 3,
                                  (lower_lip - down[:, None] * np.minimum(0.6 * tooth, 0.3 * opening))[:, ::-1]], 1)
    mouth_w = np.linalg.norm(lm[:, 64] - lm[:, 60], axis=-1)[:, None, None]
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], -1)[None]
    tongue_c = lm[:, 66] - down * (0.1 * opening[:, 0])
    tongue = tongue_c[:, None] + ring * np.concatenate([0.3 * mouth_w, 0.3 * opening], -1)

    nostrils = np.stack([0.5 * (lm[:, 31] + lm[:, 32]), 0.5 * (lm[:, 34] + lm[:, 35])], 1) - down[:, None] * 0.012 * camera.scale
    nose_w = np.linalg.norm(lm[:, 35] - lm[:, 31], axis=-1)
    axes = np.stack([0.17 * nose_w, 0.08 * nose_w], -1)[:, None].repeat(2, 1)
    angle = np.degrees(np.arctan2(right[:, 1], right[:, 0]))

    irises = project(eyes3d, camera)
    eye_w = np.stack([np.linalg.norm(lm[:, 39] - lm[:, 36], axis=-1), np.linalg.norm(lm[:, 45] - lm[:, 42], axis=-1)], 1)
    return dict(clip=clip, upper_teeth=upper_teeth, lower_teeth=lower_teeth, tongue=tongue, nostrils=nostrils,
                nostril_axes=axes, angle=angle, irises=irises, iris_radius=0.24 * eye_w, **brows)


def _egg_hit(origin: torch.Tensor, direction: torch.Tensor, upper: Ellipsoid, lower: Ellipsoid, px_radius: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """First hit of rays with the egg-shaped head: the upper half of one ellipsoid joined at the
    equator (y = centre) to the lower half of another. Each half is convex (ellipsoid ∩ half-space), so
    its entry is the later of the two entries, valid if before the earlier exit.

    Returns (t, coverage in [0, 1] with anti-aliased silhouette, hit point, hit is on the upper half).
    """
    y0 = upper.center[1]
    dy = direction[..., 1]
    dy = torch.where(dy.abs() < 1e-6, torch.full_like(dy, 1e-6), dy)
    t_plane = (y0 - origin[..., 1]) / dy
    inf = torch.full_like(t_plane, float("inf"))
    best_t, best_cov, best_upper = inf, torch.zeros_like(t_plane), torch.zeros_like(t_plane, dtype=torch.bool)
    for ell, is_upper in ((upper, True), (lower, False)):
        t_in, t_out, disc = ray_cast(origin, direction, ell)
        # Half-space y < y0 (upper) or y >= y0 (lower) along the ray: (h_in, h_out).
        towards = (dy > 0) == is_upper   # moving out of this half as t grows
        h_in = torch.where(towards, -inf, t_plane)
        h_out = torch.where(towards, t_plane, inf)
        entry, leave = torch.maximum(t_in, h_in), torch.minimum(t_out, h_out)
        valid = (disc > 0) & (entry < leave)
        mid_y = origin[..., 1] + 0.5 * (t_in + t_out) * direction[..., 1]
        near_edge = (disc <= 0) & ((mid_y < y0) == is_upper)
        cov = (0.5 + 0.5 * disc * px_radius).clamp(0, 1) * (valid | near_edge)
        t = torch.where(valid, entry, inf)
        closer = t < best_t
        best_upper = torch.where(closer, torch.full_like(best_upper, is_upper), best_upper)
        best_t = torch.minimum(best_t, t)
        best_cov = torch.maximum(best_cov, cov)
    finite = torch.where(torch.isfinite(best_t), best_t, torch.zeros_like(best_t))
    return best_t, best_cov, origin + finite[..., None] * direction, best_upper


def _shade(normal: torch.Tensor, light: torch.Tensor, ambient: float) -> torch.Tensor:
    """Lambert shading (T, H, W) of world-space unit normals (T, H, W, 3)."""
    return ambient + (1 - ambient) * (normal @ light).clamp(min=0.0)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def render(identity: Identity, motion: Motion, points: np.ndarray, camera: Camera, image_size: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Render frames (T, S, S, 3) uint8 of the posed head and return them with the exact landmarks."""
    s = image_size
    t = len(points)
    lm = project(points, camera)
    eyes3d = np.stack([points[:, 36:42].mean(1), points[:, 42:48].mean(1)], 1)
    eyes3d = eyes3d + np.concatenate([motion.gaze, np.full((t, 1), 0.012)], -1)[:, None]
    geometry = _feature_geometry(lm, eyes3d, camera, identity, motion)
    masks = torch.from_numpy(_feature_masks(lm, geometry, s, camera.scale)).float() / 255.0
    tex = make_textures(identity, s)

    rot = torch.from_numpy(camera.rotation).float()
    pivot = torch.from_numpy(camera.pivot).float()
    light = torch.from_numpy(motion.light).float()
    pix = torch.arange(s, dtype=torch.float32)
    off = torch.from_numpy(camera.offset).float()
    wx = (pix[None, None, :] - off[:, 0, None, None]) / camera.scale      # (T, 1, S)
    wy = (pix[None, :, None] - off[:, 1, None, None]) / camera.scale      # (T, S, 1)
    wx, wy = torch.broadcast_tensors(wx, wy)
    q = torch.stack([wx - pivot[0], wy - pivot[1], torch.full_like(wx, 5.0)], -1)
    origin = torch.einsum("tij,thwi->thwj", rot, q) + pivot            # head-local ray origins
    direction = -rot[:, 2, :][:, None, None, :]                         # head-local view direction

    inf = torch.tensor(float("inf"))
    px_radius = camera.scale * 0.5 * (identity.cranium.radii[0] + identity.cranium.radii[1])

    t_head, cov_head, p_head, use_c = _egg_hit(origin, direction, identity.cranium, identity.jaw, px_radius)
    radii = torch.where(use_c[..., None], p_head.new_tensor(identity.cranium.radii), p_head.new_tensor(identity.jaw.radii))
    centre = p_head.new_tensor(identity.cranium.center)
    unit = (p_head - centre) / radii                                  # on the unit sphere
    n_head = _unit(unit / radii)

    t_n, _, disc_n = ray_cast(origin, direction, identity.nose)
    nose_front = ((t_n < t_head) & (disc_n > 0)).float() * (0.5 + 0.5 * disc_n * camera.scale * 0.08).clamp(0, 1)
    p_nose = origin + t_n[..., None] * direction
    nn_ = identity.nose
    n_local = (p_nose - p_nose.new_tensor(nn_.center))
    c_, s_ = float(np.cos(nn_.tilt)), float(np.sin(nn_.tilt))
    n_tilt = torch.stack([n_local[..., 0], c_ * n_local[..., 1] - s_ * n_local[..., 2],
                          s_ * n_local[..., 1] + c_ * n_local[..., 2]], -1) / p_nose.new_tensor(nn_.radii) ** 2
    n_nose = _unit(torch.stack([n_tilt[..., 0], c_ * n_tilt[..., 1] + s_ * n_tilt[..., 2],
                                -s_ * n_tilt[..., 1] + c_ * n_tilt[..., 2]], -1))
    n_local_all = _unit(n_head + nose_front[..., None] * (n_nose - n_head))
    p_surface = p_head + nose_front[..., None] * (p_nose - p_head)
    normal = torch.einsum("tij,thwj->thwi", rot, n_local_all)
    shade = _shade(normal, light, motion.ambient)
    # A soft specular sheen on skin (view direction is +z in the world).
    half = _unit(light + light.new_tensor([0.0, 0.0, 1.0]))
    spec = (normal @ half).clamp(min=0) ** 24 * 0.12

    # Hair on the head: above a (temple-curved) hairline, and on the sides/back of the skull.
    def hair_alpha(u: torch.Tensor, soft: float, limit: float, side_depth: float) -> torch.Tensor:
        front = (identity.hairline + identity.hairline_curve * u[..., 0] ** 2 - u[..., 1]) * soft
        side = torch.minimum((side_depth - u[..., 2]) * soft, (limit - u[..., 1]) * soft)
        return torch.maximum(front, side).add(0.5).clamp(0, 1)

    soft = camera.scale * 0.6
    hair_on_head = hair_alpha(unit, soft, min(identity.hair_length, 0.3), identity.hair_side) * (1 - nose_front)
    skin_albedo = _lookup(tex.skin, p_surface[..., 0], p_surface[..., 1])
    hair_albedo = _lookup(tex.hair, p_head[..., 0], p_head[..., 1])
    albedo = skin_albedo + hair_on_head[:, None] * (hair_albedo - skin_albedo)

    m = {name: masks[:, i] for i, name in enumerate(
        ["clip", "eyes", "lids", "brows", "lips", "mouth", "upper_teeth", "lower_teeth", "tongue", "lip_line",
         "nostrils", "iris", "pupil", "catchlight"])}
    not_nose = 1 - nose_front
    head_a = cov_head * (1 - m["clip"])

    def paint(base: torch.Tensor, colour, alpha: torch.Tensor) -> torch.Tensor:
        colour = torch.as_tensor(np.asarray(colour, np.float32)) if not torch.is_tensor(colour) else colour
        if colour.dim() == 1:
            colour = colour[None, :, None, None]
        return base + alpha[:, None] * (colour - base)

    skin = identity.skin.astype(np.float32)
    eye_a = m["eyes"] * not_nose
    albedo = paint(albedo, identity.brows, 0.9 * m["brows"] * not_nose)
    albedo = paint(albedo, identity.lips * np.array([0.9, 0.88, 0.88]), m["lips"])
    albedo = paint(albedo, [0.93, 0.9, 0.86], eye_a)
    albedo = paint(albedo, identity.iris, m["iris"] * eye_a)
    albedo = paint(albedo, [0.03, 0.02, 0.02], m["pupil"] * eye_a)
    albedo = paint(albedo, [0.09, 0.05, 0.05], 0.9 * m["lids"] * not_nose)
    albedo = paint(albedo, [0.13, 0.04, 0.05], m["mouth"])
    albedo = paint(albedo, [0.75, 0.38, 0.4], m["tongue"] * m["mouth"])
    albedo = paint(albedo, [0.92, 0.9, 0.82], torch.maximum(m["upper_teeth"], m["lower_teeth"]) * m["mouth"])
    albedo = paint(albedo, skin * 0.35, 0.6 * m["lip_line"])
    albedo = paint(albedo, skin * 0.25, 0.85 * m["nostrils"])
    colour = albedo * shade[:, None] + spec[:, None]
    colour = paint(colour, [1.0, 1.0, 1.0], 0.9 * m["catchlight"] * eye_a)

    # Neck (a world-space cylinder under the head, in the chin's shadow) and shoulders.
    neck_r = 0.7 * identity.cranium.radii[0]
    nx = wx / neck_r
    neck_a = ((1 - nx.abs()) * neck_r * camera.scale).clamp(0, 1) * (wy > pivot[1]).float()
    neck_n = torch.stack([nx.clamp(-1, 1), torch.full_like(nx, -0.15), (1 - nx.clamp(-1, 1) ** 2).clamp(min=0).sqrt()], -1)
    neck_shade = _shade(_unit(neck_n), light, motion.ambient) * 0.7
    chin_y = identity.layout[8, 1]
    shoulder_y = chin_y + 0.1 + 0.25 * torch.exp(-(wx / (1.4 * neck_r)) ** 2)
    body_a = ((wy - shoulder_y) * camera.scale).clamp(0, 1)

    m0 = tex.margin
    bx, by = (int(round(v * s / 128)) for v in motion.background_shift)
    bg = tex.background[:, m0 + by: m0 + by + s, m0 + bx: m0 + bx + s][None].expand(t, -1, -1, -1)
    img = bg
    img = paint(img, torch.from_numpy(identity.shirt.astype(np.float32))[None, :, None, None]
                * (0.6 + 0.4 * neck_shade[:, None] / 0.7), body_a)
    img = paint(img, torch.from_numpy(skin)[None, :, None, None] * neck_shade[:, None], neck_a)
    img = paint(img, colour, head_a)

    # Hair volume: a shell around the skull showing hair wherever the hair pattern says so.
    vol = 1 + identity.hair_volume
    shells = [Ellipsoid(e.center, tuple(r * vol for r in e.radii)) for e in (identity.cranium, identity.jaw)]
    t_s, cov_s, p_s, upper_s = _egg_hit(origin, direction, shells[0], shells[1], px_radius * vol)
    radii_s = torch.where(upper_s[..., None], p_s.new_tensor(shells[0].radii), p_s.new_tensor(shells[1].radii))
    u_s = (p_s - centre) / radii_s
    shell_a = cov_s * hair_alpha(u_s, soft * vol, identity.hair_length, max(identity.hair_side, 0.55)) * (t_s < t_head + 1e-3)
    shell_n = torch.einsum("tij,thwj->thwi", rot, _unit(u_s / radii_s))
    shell_col = _lookup(tex.hair, p_s[..., 0], p_s[..., 1]) * _shade(shell_n, light, motion.ambient)[:, None]
    img = paint(img, shell_col, shell_a)

    frames = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return frames, lm.astype(np.float32)
