"""Geometry and motion of the synthetic talking heads: who a person is (3D shape, colours, hair style)
and how they move (pose, mouth, blinks, brows), with the exact 68 iBUG landmarks of every frame.

Units are "face units": the mean face's 68-point layout spans about 0.89 of them in x. The head's
local frame has x to the subject's left (image right for a frontal face), y down, z towards the
camera. The head is an egg-shaped solid (two half-ellipsoids sharing the equator, a rounder cranium
and a longer lower face) plus an ellipsoid nose; every landmark is a point *on* that solid, so when
it is rotated and projected the landmark lands exactly where the renderer paints its feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Mean 2D dlib/iBUG-68 layout (OpenFace's alignment template, the average of dlib's landmarks on
#: real faces), in a unit box. Made mirror-symmetric below; per-identity deformations add the rest.
_MEAN_2D = np.array([
    (0.0792, 0.3392), (0.0829, 0.4570), (0.0968, 0.5756), (0.1221, 0.6919), (0.1687, 0.8003),
    (0.2398, 0.8957), (0.3257, 0.9771), (0.4223, 1.0433), (0.5318, 1.0608), (0.6413, 1.0398),
    (0.7381, 0.9723), (0.8244, 0.8896), (0.8948, 0.7925), (0.9394, 0.6815), (0.9611, 0.5622),
    (0.9706, 0.4418), (0.9712, 0.3221), (0.1638, 0.2492), (0.2178, 0.2043), (0.2913, 0.1924),
    (0.3675, 0.2036), (0.4393, 0.2331), (0.5864, 0.2281), (0.6602, 0.1959), (0.7375, 0.1824),
    (0.8132, 0.1928), (0.8708, 0.2353), (0.5153, 0.3186), (0.5162, 0.3962), (0.5171, 0.4738),
    (0.5182, 0.5532), (0.4337, 0.6041), (0.4755, 0.6208), (0.5207, 0.6343), (0.5659, 0.6188),
    (0.6071, 0.6016), (0.2524, 0.3311), (0.2987, 0.3026), (0.3557, 0.3030), (0.4037, 0.3387),
    (0.3525, 0.3500), (0.2968, 0.3505), (0.6313, 0.3341), (0.6791, 0.2965), (0.7360, 0.2947),
    (0.7829, 0.3213), (0.7403, 0.3418), (0.6850, 0.3437), (0.3532, 0.7462), (0.4146, 0.7191),
    (0.4777, 0.7068), (0.5227, 0.7171), (0.5698, 0.7054), (0.6352, 0.7157), (0.6995, 0.7394),
    (0.6394, 0.8052), (0.5764, 0.8354), (0.5254, 0.8417), (0.4764, 0.8375), (0.4138, 0.8100),
    (0.3801, 0.7500), (0.4780, 0.7451), (0.5234, 0.7489), (0.5711, 0.7433), (0.6724, 0.7442),
    (0.5725, 0.7766), (0.5240, 0.7834), (0.4776, 0.7785)], dtype=np.float64)

#: Index of each landmark's mirror image (iBUG-68 order).
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])

JAW, BROWS, NOSE = np.arange(0, 17), np.arange(17, 27), np.arange(27, 36)
EYES, OUTER_LIP, INNER_LIP = np.arange(36, 48), np.arange(48, 60), np.arange(60, 68)
UPPER_LIDS, LOWER_LIDS = np.array([37, 38, 43, 44]), np.array([41, 40, 47, 46])


def _mean_layout_2d() -> np.ndarray:
    """The template made symmetric, centred on x = 0, with a closed mouth (inner lips on one line)."""
    pts = _MEAN_2D.copy()
    pts[:, 0] -= 0.5 * (pts[:, 0] + pts[MIRROR, 0]).mean()
    sym = 0.5 * (pts + pts[MIRROR] * np.array([-1.0, 1.0]))
    lip_line = 0.5 * (sym[[61, 62, 63], 1] + sym[[67, 66, 65], 1])
    sym[[61, 62, 63], 1] = lip_line
    sym[[67, 66, 65], 1] = lip_line
    return sym


MEAN_LAYOUT_2D = _mean_layout_2d()


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in head-local coordinates, optionally tilted about the x axis (radians)."""
    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    tilt: float = 0.0


@dataclass(frozen=True)
class Identity:
    """Everything that makes one synthetic person look like themselves in every video."""
    layout: np.ndarray          # (68, 3) neutral landmarks on the head surface, face units
    cranium: Ellipsoid          # upper half of the head (local y < centre)
    jaw: Ellipsoid              # lower half of the head (same centre, x and z radii)
    nose: Ellipsoid
    ears: tuple[Ellipsoid, Ellipsoid]  # flat ellipsoids on the sides of the skull (right, left)
    skin: np.ndarray            # RGB in [0, 1]
    lips: np.ndarray
    hair: np.ndarray
    brows: np.ndarray
    iris: np.ndarray
    shirt: np.ndarray
    background: np.ndarray      # (3, 3): base colour and two accent colours
    hairline: float             # normalized head v (-1 crown .. 0 equator) of the front hairline
    hairline_curve: float       # how much lower the hairline sits at the temples
    hair_side: float            # hair covers head points with normalized z below this
    hair_volume: float          # hair shell scale - 1
    hair_length: float          # normalized v down to which the hair shell reaches
    brow_thickness: float       # face units
    texture_seed: int


Vec = tuple  # (x, y, z) of broadcastable tensors: separate planes are much faster than a last dim of 3


@dataclass(frozen=True)
class Rays:
    """Parallel rays whose origins are affine in two pixel coordinates (a weak-perspective camera):
    origin = ox * x + oy * y + o0, direction d. With x of shape (T, 1, W), y of shape (T, H, 1) and
    per-frame numpy coefficients (T, 1, 1), every quantity of a ray-ellipsoid test is a small
    polynomial in (x, y): its coefficients are worked out in numpy, and only a handful of full-size
    tensor operations remain per test (instead of dozens, plus hundreds of tiny ones)."""
    x: torch.Tensor
    y: torch.Tensor
    ox: tuple[np.ndarray, np.ndarray, np.ndarray]
    oy: tuple[np.ndarray, np.ndarray, np.ndarray]
    o0: tuple[np.ndarray, np.ndarray, np.ndarray]
    d: tuple[np.ndarray, np.ndarray, np.ndarray]

    def crop(self, rows: slice, cols: slice) -> "Rays":
        """The rays of a sub-box of pixels (x and y are separable, so this is two slices)."""
        return Rays(self.x[:, :, cols], self.y[:, rows], self.ox, self.oy, self.o0, self.d)

    def at(self, t: torch.Tensor | float, axes: tuple[int, ...] = (0, 1, 2)) -> Vec:
        """Points origin + t * direction (only the requested axes)."""
        return tuple(tensor32(self.ox[k]) * self.x + (tensor32(self.oy[k]) * self.y + tensor32(self.o0[k]))
                     + t * tensor32(self.d[k]) for k in axes)


def tensor32(a) -> torch.Tensor:
    """numpy array or scalar -> float32 tensor (per-frame coefficients meet float32 images)."""
    return torch.from_numpy(np.asarray(a, np.float32))


def ray_cast(rays: Rays, ell: Ellipsoid) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersections of rays with an ellipsoid.

    Returns (t_in, t_out, disc): the ray parameters of the entry and exit points and ``1 - r^2``, r the
    ray's closest approach to the centre in units of the radii: positive where the ray hits, and its
    size near zero tells how far a pixel is from the silhouette (used for anti-aliasing).
    """
    ax, ay, a0, d = ([np.asarray(c, np.float64) for c in v]
                     for v in (rays.ox, rays.oy, [o - c for o, c in zip(rays.o0, ell.center)], rays.d))
    if ell.tilt:  # rotate everything into the ellipsoid's frame (about x)
        c, s = np.cos(ell.tilt), np.sin(ell.tilt)
        for v in (ax, ay, a0, d):
            v[1], v[2] = c * v[1] - s * v[2], s * v[1] + c * v[2]
    for v in (ax, ay, a0, d):
        v[:] = [v[k] / ell.radii[k] for k in range(3)]

    def dot(u: list, w: list) -> np.ndarray:
        return u[0] * w[0] + u[1] * w[1] + u[2] * w[2]

    a = dot(d, d)
    x, y = rays.x, rays.y
    # b / a (ray parameter of the closest approach, negated) and |origin|^2 - 1, as polynomials in (x, y).
    mid = tensor32(-dot(ax, d) / a) * x + (tensor32(-dot(ay, d) / a) * y + tensor32(-dot(a0, d) / a))
    c0 = x * (tensor32(dot(ax, ax)) * x + tensor32(2 * dot(ax, a0))) \
        + (y * (tensor32(dot(ay, ay)) * y + tensor32(2 * dot(ay, a0))) + tensor32(dot(a0, a0) - 1.0))
    c0 += (tensor32(2 * dot(ax, ay)) * x) * y
    disc = (mid * mid) * tensor32(a) - c0
    half = disc.clamp(min=0.0).mul(tensor32(1.0 / a)).sqrt_()
    return mid - half, mid + half, disc


def _surface_z(ident_parts: tuple[Ellipsoid, Ellipsoid, Ellipsoid], xy: np.ndarray) -> np.ndarray:
    """z of the front surface (head or nose, whichever is nearer the camera) above points (x, y)."""
    cranium, jaw, nose = ident_parts
    zero, one = np.zeros(()), np.ones(())
    rays = Rays(torch.from_numpy(xy[:, 0]), torch.from_numpy(xy[:, 1]), (one, zero, zero), (zero, one, zero),
                (zero, zero, 10.0 * one), (zero, zero, -one))
    best = np.full(len(xy), -np.inf)
    for ell in (cranium, jaw, nose):
        t, _, disc = (v.numpy() for v in ray_cast(rays, ell))
        ok = disc > 0
        if ell is not nose:  # each head half owns its side of the equator
            upper = xy[:, 1] < ell.center[1]
            ok &= upper if ell is cranium else ~upper
        best = np.where(ok & (10.0 - t > best), 10.0 - t, best)
    return np.where(np.isfinite(best), best, 0.0)


def _sample_colour(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> np.ndarray:
    base = palette[rng.integers(len(palette))]
    t = rng.random()
    other = palette[rng.integers(len(palette))]
    return np.clip(base + 0.3 * t * (other - base) + rng.normal(0, jitter, 3), 0.0, 1.0)


_SKIN = np.array([[0.96, 0.80, 0.70], [0.90, 0.70, 0.58], [0.80, 0.60, 0.46], [0.68, 0.48, 0.34],
                  [0.52, 0.35, 0.24], [0.38, 0.25, 0.17], [0.93, 0.76, 0.62]])
_HAIR = np.array([[0.08, 0.06, 0.05], [0.20, 0.13, 0.08], [0.38, 0.25, 0.14], [0.62, 0.48, 0.28],
                  [0.80, 0.68, 0.45], [0.50, 0.22, 0.10], [0.55, 0.55, 0.55], [0.14, 0.12, 0.12]])
_IRIS = np.array([[0.30, 0.18, 0.10], [0.18, 0.10, 0.06], [0.30, 0.45, 0.62], [0.32, 0.48, 0.30],
                  [0.45, 0.38, 0.22], [0.42, 0.45, 0.48]])


def make_identity(rng: np.random.Generator) -> Identity:
    """Sample a person: face proportions (a deformation of the mean layout), head solid, colours, hair."""
    pts = _face_proportions(rng)
    cranium, jaw, nose = _head_solids(rng, pts)
    layout = np.concatenate([pts, _layout_depth(pts, (cranium, jaw, nose))[:, None]], axis=1)

    skin = _sample_colour(rng, _SKIN, 0.02)
    hair = _sample_colour(rng, _HAIR, 0.03)
    lips = np.clip(skin * np.array([0.82, 0.55, 0.55]) + rng.normal(0, 0.03, 3), 0, 1)
    brows = np.clip(0.5 * hair + 0.5 * skin * 0.35, 0, 1) * rng.uniform(0.7, 1.0)
    bg = rng.uniform(0.1, 0.9, (3, 3)) * rng.uniform(0.4, 1.0, (3, 1))
    style = rng.random()
    return Identity(
        layout=layout, cranium=cranium, jaw=jaw, nose=nose, ears=_ears(pts, cranium), skin=skin, lips=lips, hair=hair,
        brows=brows, iris=_sample_colour(rng, _IRIS, 0.03), shirt=rng.uniform(0.05, 0.9, 3),
        background=bg,
        hairline=rng.uniform(-0.75, -0.52) if style > 0.08 else -1.2,
        hairline_curve=rng.uniform(0.0, 0.45),
        hair_side=rng.uniform(0.0, 0.35),
        hair_volume=rng.uniform(0.03, 0.16),
        hair_length=rng.uniform(-0.1, 0.3) if style < 0.75 else rng.uniform(0.6, 1.4),
        brow_thickness=rng.uniform(0.022, 0.04),
        texture_seed=int(rng.integers(2**31)))


def _face_proportions(rng: np.random.Generator) -> np.ndarray:
    """(68, 2) face points: the mean layout with a sampled width, face length, jaw, eyes, brows, nose and lips
    (each draw of ``rng`` in a fixed order: an identity's id always gives the same face)."""
    pts = MEAN_LAYOUT_2D.copy()
    width = rng.uniform(0.9, 1.1)
    pts[:, 0] *= width
    # Lower face length and jaw width (more at the chin than at the ears).
    below = np.clip((pts[:, 1] - 0.33) / 0.73, 0.0, 1.0)
    pts[:, 1] = 0.33 + (pts[:, 1] - 0.33) * rng.uniform(0.92, 1.08)
    pts[JAW, 0] *= 1.0 + rng.uniform(-0.12, 0.1) * below[JAW]
    # Eyes: size and spacing.
    eye_scale, eye_shift = rng.uniform(0.88, 1.15), rng.uniform(-0.025, 0.03)
    for eye in (np.arange(36, 42), np.arange(42, 48)):
        centre = pts[eye].mean(0)
        pts[eye] = centre + (pts[eye] - centre) * eye_scale
        pts[eye, 0] += np.sign(centre[0]) * eye_shift
    arch = np.clip(1 - ((np.abs(pts[BROWS, 0]) - 0.25) / 0.2) ** 2, 0, 1)
    pts[BROWS, 1] += rng.uniform(-0.03, 0.03) - rng.uniform(-0.01, 0.025) * arch
    nose_len = rng.uniform(-0.035, 0.04)
    pts[31:36, 1] += nose_len
    pts[28:31, 1] += nose_len * np.array([0.33, 0.66, 1.0])
    pts[31:36, 0] *= rng.uniform(0.8, 1.25)
    _sample_lips(rng, pts)
    pts += rng.normal(0.0, 0.004, pts.shape)  # a little asymmetry, as in every real face
    return pts


def _sample_lips(rng: np.random.Generator, pts: np.ndarray) -> None:
    """The mouth's width, each lip's thickness and the mouth's height, in place in (68, 2) ``pts``."""
    mouth = pts[48:68].mean(0)
    pts[48:68, 0] = mouth[0] + (pts[48:68, 0] - mouth[0]) * rng.uniform(0.85, 1.15)
    upper, lower = rng.uniform(0.6, 1.4), rng.uniform(0.7, 1.35)
    line = pts[62, 1]
    for idx in (np.arange(48, 55), [60, 61, 62, 63, 64]):
        pts[idx, 1] = line + (pts[idx, 1] - line) * upper
    for idx in (np.r_[54:60, 48], [64, 65, 66, 67, 60]):
        pts[idx, 1] = line + (pts[idx, 1] - line) * lower
    pts[48:68, 1] += rng.uniform(-0.02, 0.025)


def _head_solids(rng: np.random.Generator, pts: np.ndarray) -> tuple[Ellipsoid, Ellipsoid, Ellipsoid]:
    """Cranium, jaw and nose ellipsoids sized to the (68, 2) face points."""
    half_width = np.abs(pts[JAW, 0]).max()
    a = half_width * rng.uniform(1.08, 1.16)
    centre_y = rng.uniform(0.33, 0.39)
    depth = a * rng.uniform(1.05, 1.2)
    cranium = Ellipsoid((0.0, centre_y, -0.1), (a, rng.uniform(0.62, 0.72), depth))
    jaw = Ellipsoid((0.0, centre_y, -0.1), (a, pts[8, 1] - centre_y + 0.09, depth))
    nose_top, nose_bottom = pts[27, 1] - 0.02, pts[33, 1]
    nose = Ellipsoid((0.0, 0.5 * (nose_top + nose_bottom), depth - 0.2),
                     (rng.uniform(0.075, 0.1), 0.5 * (nose_bottom - nose_top) + 0.02, rng.uniform(0.15, 0.19)),
                     tilt=rng.uniform(0.15, 0.35))
    return cranium, jaw, nose


def _layout_depth(pts: np.ndarray, solids: tuple[Ellipsoid, Ellipsoid, Ellipsoid]) -> np.ndarray:
    """(68,) depth of each face point: on the head's surface, the jaw outline round the cheek's side, lips a
    little in front and eyes a little behind it."""
    z = _surface_z(solids, pts)
    jaw_weight = 0.35 + 0.65 * (1.0 - np.abs(pts[JAW, 0]) / np.abs(pts[JAW, 0]).max())
    z[JAW] = -0.1 + (z[JAW] + 0.1) * jaw_weight   # the jaw outline runs round the cheek's side
    z[48:68] += 0.02
    z[36:48] -= 0.01
    return z


def _ears(pts: np.ndarray, head: Ellipsoid) -> tuple[Ellipsoid, Ellipsoid]:
    """Ears from the brow line to the nose base, on the skull's sides a little behind its equator
    (derived from the face, so adding them changed no one's other features)."""
    top, bottom = pts[17:27, 1].mean() + 0.04, pts[33, 1]
    height = 0.5 * (bottom - top)
    a = head.radii[0]
    return tuple(Ellipsoid((side * 0.97 * a, top + height, head.center[2] - 0.05), (0.045, height, 0.08))
                 for side in (-1.0, 1.0))


@dataclass(frozen=True)
class Motion:
    """Per-frame pose and expression of one video (arrays of length T) plus per-video constants."""
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    mouth: np.ndarray     # 0 closed .. 1 wide open
    smile: np.ndarray     # -1 .. 1 (corners down .. up)
    brows: np.ndarray     # -1 .. 1 (frown .. raised)
    blink: np.ndarray     # 0 open .. 1 closed
    gaze: np.ndarray      # (T, 2) eye direction offsets, face units
    shift: np.ndarray     # (T, 2) head translation, fraction of the image side
    scale: float          # face size relative to the framing contract
    light: np.ndarray     # (3,) unit vector towards the light, world frame
    ambient: float
    background_shift: np.ndarray  # (2,) pixels at 128 px, per video
    #: 0 .. 1 per frame: an "o"/"u"/"w", the corners drawn in and the lips apart evenly (0 = unrounded). Real
    #: speech changes the mouth's width this way by a fifth or more; opening and smile alone moved it by
    #: 0.03-0.05 eye distances, under what any judge of width can read.
    rounding: np.ndarray


def _smooth_track(rng: np.random.Generator, num_frames: int, low: float, high: float,
                  spacing: float = 8.0) -> np.ndarray:
    """A smooth random curve: random keyframes every ``spacing`` frames joined by smoothstep."""
    keys = int(np.ceil(num_frames / spacing)) + 2
    values = rng.uniform(low, high, keys)
    pos = np.arange(num_frames) / spacing + rng.random()
    i = np.floor(pos).astype(int)
    f = pos - i
    f = f * f * (3 - 2 * f)
    return values[i] * (1 - f) + values[i + 1] * f


def make_motion(rng: np.random.Generator, num_frames: int) -> Motion:
    """Smooth head rotation spanning about +-30 deg yaw, +-15 pitch, +-10 roll; speech-like mouth."""
    deg = np.pi / 180
    mouth = np.clip(_smooth_track(rng, num_frames, -0.6, 1.15, spacing=5.0), 0.0, 1.0)
    blink = np.zeros(num_frames)
    blinks = max(1, int(round(num_frames / 32 * rng.choice([1, 2]))))
    for centre in rng.uniform(1, max(num_frames - 2, 2), blinks):
        blink = np.maximum(blink, np.exp(-((np.arange(num_frames) - centre) / 1.1) ** 2))
    blink = np.clip(blink * 1.15, 0, 1)
    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.8, -0.1), 1.0])
    return Motion(
        yaw=_smooth_track(rng, num_frames, -32, 32) * deg,
        pitch=_smooth_track(rng, num_frames, -15, 15) * deg,
        roll=_smooth_track(rng, num_frames, -10, 10) * deg,
        mouth=mouth,
        smile=_smooth_track(rng, num_frames, -0.6, 1.0, spacing=10.0),
        brows=_smooth_track(rng, num_frames, -1.0, 1.0, spacing=10.0),
        blink=blink,
        gaze=np.stack([_smooth_track(rng, num_frames, -0.02, 0.02),
                       _smooth_track(rng, num_frames, -0.01, 0.01)], -1),
        shift=np.stack([_smooth_track(rng, num_frames, -0.02, 0.02, spacing=12.0),
                        _smooth_track(rng, num_frames, -0.015, 0.015, spacing=12.0)], -1),
        scale=rng.uniform(0.96, 1.04),
        light=light / np.linalg.norm(light),
        ambient=rng.uniform(0.3, 0.5),
        background_shift=rng.uniform(-6, 6, 2),
        # Drawn last so that every other track of a seeded video stays what it was before rounding existed.
        rounding=np.clip(_smooth_track(rng, num_frames, -0.8, 1.0, spacing=6.0), 0.0, 1.0))


def expression_layout(identity: Identity, motion: Motion) -> np.ndarray:
    """(T, 68, 3) landmarks in the head frame after mouth, smile, brow and blink movements."""
    t = len(motion.yaw)
    pts = np.repeat(identity.layout[None], t, axis=0).copy()
    o = motion.mouth[:, None]
    drop = 0.15 * o
    pts[:, [65, 66, 67], 1] += drop
    pts[:, 55:60, 1] += drop * 0.95
    pts[:, [61, 62, 63], 1] -= 0.1 * drop
    pts[:, [48, 54, 60, 64], 1] += 0.35 * drop
    chin = np.exp(-((np.arange(17) - 8) / 4.5) ** 2)
    pts[:, JAW, 1] += 0.7 * drop * chin
    narrow = 1.0 - 0.12 * o
    mouth_x = pts[:, 48:68, 0]
    pts[:, 48:68, 0] = mouth_x * narrow
    # Rounding: the corners (most) and the lips beside them (less) drawn towards the middle, and the lips pushed
    # apart evenly above and below: in 2-D, what lips pushed forward into an "o" look like from the front.
    r = motion.rounding[:, None]
    centre_x = pts[:, 48:68, 0].mean(1, keepdims=True)
    spread = np.abs(pts[:, 48:68, 0] - centre_x) / np.abs(pts[:, [48, 54], 0] - centre_x).max(1, keepdims=True)
    pull = 0.3 * spread ** 2
    pull[:, 12:] = 0.5 * spread[:, 12:]  # the opening rounds more than the lips around it (they thicken at the corners)
    pts[:, 48:68, 0] = centre_x + (pts[:, 48:68, 0] - centre_x) * (1 - r * pull)
    pts[:, [49, 50, 51, 52, 53, 61, 62, 63], 1] -= 0.025 * r
    pts[:, [55, 56, 57, 58, 59, 65, 66, 67], 1] += 0.025 * r
    s = motion.smile[:, None]
    corners = [48, 54, 60, 64]
    pts[:, corners, 1] -= 0.025 * s
    pts[:, corners, 0] *= 1.0 + 0.07 * s
    pts[:, BROWS, 1] -= 0.03 * motion.brows[:, None]
    b = motion.blink[:, None]
    upper, lower = pts[:, UPPER_LIDS, 1], pts[:, LOWER_LIDS, 1]
    pts[:, UPPER_LIDS, 1] = upper + (lower - 0.003 - upper) * b
    return pts


def rotation_matrices(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(T, 3, 3) head-to-camera rotations: yaw about y, pitch about x, roll about z (y down, z to camera)."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ rx @ ry
