"""Cartoon faces drawn from facial action-unit intensities, with identity, pose, motion and noise.

The face lives in its own coordinates (``u`` right, ``v`` down, the face ellipse spans about ±0.63 x ±0.82);
each frame maps the pixel grid into them through the head pose (translation, scale, roll), so every element
moves with the head. Shapes are signed distances turned into anti-aliased coverage, painted in order.

Each action unit moves a large, low-dimensional feature so an emotion survives the resize to 64 px:

=====  ==========================================  =====  ========================================
AU01   inner brow ends up, central forehead lines  AU12   lip corners up, mouth wider (smile)
AU02   outer brow ends up, forehead lines wider    AU14   dimples at the lip corners
AU04   brows down and together, furrows between    AU15   lip corners down
AU05   eyes wider                                  AU17   chin raised (crease under the lip)
AU06   cheeks raised (blush), eyes narrowed        AU20   mouth stretched sideways
AU07   eyelids tightened                           AU23   lips tightened, thinner
AU09   nose wrinkles, nostrils flared              AU25   lips parted (teeth with AU10/12/20)
AU10   upper lip raised                            AU26   jaw dropped (mouth open)
AU45   blink
=====  ==========================================  =====  ========================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data.synth.spec import AU_INDEX, brief_envelope

Array = np.ndarray
_IDLE_AU = 0.1  # intensity below which an AU's wrinkles/flush/dimples are not drawn (idle micro-movement)


@dataclass(frozen=True)
class Identity:
    """Per-clip appearance (all lengths in face units)."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    lips: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    face_width: float
    face_height: float
    eye_spacing: float
    eye_width: float
    eye_height: float
    brow_length: float
    brow_thickness: float
    mouth_width: float
    gaze: float
    brightness: float


@dataclass(frozen=True)
class Pose:
    """Per-clip head placement and motion (pixels, radians, Hz)."""

    center: tuple[float, float]
    scale: float  # pixels per face unit
    roll: float
    drift: float
    drift_hz: float
    phase: float


def random_identity(rng: np.random.Generator, variation: float = 1.0) -> Identity:
    """A random face: skin tone, hair, proportions, background and lighting.

    ``variation`` (0..1) scales how far skin tone and background colours spread around their middle values:
    1 is the full range; smaller values make identity nuisance weaker relative to the expression.
    """
    tone = 0.5 + (rng.uniform(0.0, 1.0) - 0.5) * variation
    skin = tuple(np.array([238, 200, 172]) * (1 - tone) + np.array([128, 86, 60]) * tone)
    hair = tuple(
        np.array([[40, 28, 20], [90, 60, 30], [200, 170, 110], [150, 150, 150], [20, 20, 25]])[rng.integers(5)]
    )
    lips = tuple(np.array(skin) * 0.7 + np.array([60, 10, 15]))
    hue = 0.5 + (rng.uniform(0, 1, size=(2, 3)) - 0.5) * variation
    background = tuple(tuple(60 + 150 * row) for row in hue)
    return Identity(
        skin=skin,  # type: ignore[arg-type]
        hair=hair,  # type: ignore[arg-type]
        lips=lips,  # type: ignore[arg-type]
        background=background,  # type: ignore[arg-type]
        face_width=rng.uniform(0.58, 0.68),
        face_height=rng.uniform(0.78, 0.86),
        eye_spacing=rng.uniform(0.22, 0.27),
        eye_width=rng.uniform(0.11, 0.13),
        eye_height=rng.uniform(0.05, 0.062),
        brow_length=rng.uniform(0.19, 0.24),
        brow_thickness=rng.uniform(0.028, 0.04),
        mouth_width=rng.uniform(0.19, 0.23),
        gaze=rng.uniform(-0.02, 0.02),
        brightness=rng.uniform(0.88, 1.1),
    )


def random_pose(rng: np.random.Generator, size: int) -> Pose:
    """A random head placement with a slow drift."""
    return Pose(
        center=(size * rng.uniform(0.48, 0.52), size * rng.uniform(0.49, 0.53)),
        scale=size * rng.uniform(0.44, 0.48),
        roll=rng.uniform(-0.07, 0.07),
        drift=size * rng.uniform(0.004, 0.012),
        drift_hz=rng.uniform(0.15, 0.5),
        phase=rng.uniform(0, 2 * np.pi),
    )


def _coverage(distance: Array, scale: float) -> Array:
    """Anti-aliased coverage of a signed distance (face units, positive inside)."""
    return np.clip(distance * scale + 0.5, 0.0, 1.0)


def _ellipse(
    u: Array, v: Array, cu: Array | float, cv: Array | float, ru: Array | float, rv: Array | float
) -> Array:
    """Approximate signed distance to an ellipse (positive inside)."""
    radius = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return (1.0 - radius) * np.minimum(ru, rv)


def _segment(u: Array, v: Array, a: tuple[Array, Array], b: tuple[Array, Array], thickness: float) -> Array:
    """Signed distance to a thick segment from ``a`` to ``b`` (positive inside)."""
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip(((u - a[0]) * du + (v - a[1]) * dv) / (du * du + dv * dv + 1e-9), 0.0, 1.0)
    return thickness - np.hypot(u - (a[0] + t * du), v - (a[1] + t * dv))


class _Canvas:
    """Frames being painted, with the face coordinates of every pixel and per-element bounding boxes."""

    def __init__(self, image: Array, pose: Pose, fps: float) -> None:
        count, size = image.shape[0], image.shape[1]
        time = np.arange(count, dtype=np.float32) / fps
        swing = np.sin(2 * np.pi * pose.drift_hz * time + pose.phase)
        wobble = np.cos(2 * np.pi * pose.drift_hz * 0.7 * time + pose.phase)
        self.cx = (pose.center[0] + pose.drift * swing).astype(np.float32)[:, None, None]
        self.cy = (pose.center[1] + 0.5 * pose.drift * wobble).astype(np.float32)[:, None, None]
        roll = (pose.roll + 0.03 * swing).astype(np.float32)[:, None, None]
        self.cos, self.sin = np.cos(roll), np.sin(roll)
        self.scale = pose.scale
        self.size = size
        self.image = image
        grid = np.arange(size, dtype=np.float32) + 0.5
        dx, dy = grid[None, None, :] - self.cx, grid[None, :, None] - self.cy
        self.u = (self.cos * dx + self.sin * dy) / self.scale  # [T, H, W]
        self.v = (-self.sin * dx + self.cos * dy) / self.scale

    def box(self, cu: float, cv: float, radius: float) -> tuple[slice, slice]:
        """Pixel rows/columns that hold the disc of ``radius`` around face point (cu, cv) in every frame."""
        x = self.cx + self.scale * (self.cos * cu - self.sin * cv)
        y = self.cy + self.scale * (self.sin * cu + self.cos * cv)
        reach = radius * self.scale + 2.0
        rows = slice(max(int(y.min() - reach), 0), min(int(np.ceil(y.max() + reach)), self.size))
        cols = slice(max(int(x.min() - reach), 0), min(int(np.ceil(x.max() + reach)), self.size))
        return rows, cols

    def uv(self, box: tuple[slice, slice] | None = None) -> tuple[Array, Array]:
        if box is None:
            return self.u, self.v
        return self.u[:, box[0], box[1]], self.v[:, box[0], box[1]]

    def paint(
        self, alpha: Array, colour: tuple[float, float, float] | Array, box: tuple[slice, slice] | None = None
    ) -> None:
        """Blend ``colour`` with coverage ``alpha`` (over ``box``, else the whole frame)."""
        target = self.image if box is None else self.image[:, box[0], box[1]]
        change = np.asarray(colour, dtype=np.float32) - target
        change *= alpha[..., None]
        target += change


def render_face(
    aus: Array, identity: Identity, pose: Pose, *, size: int, fps: float, rng: np.random.Generator
) -> Array:
    """Frames ``[T, size, size, 3]`` uint8 of a face whose AU intensities (0..1) follow ``aus`` [T, n_AU]."""
    count = aus.shape[0]
    au = {name: aus[:, index].astype(np.float32)[:, None, None] for name, index in AU_INDEX.items()}

    def shown(name: str) -> bool:
        """Whether the AU ever rises above idle micro-movement (its marks are drawn only then)."""
        return float(au[name].max()) > _IDLE_AU

    ident = identity
    top, bottom = (np.asarray(colour, dtype=np.float32) for colour in ident.background)
    ramp = ((np.arange(size, dtype=np.float32) + 0.5) / size)[None, :, None, None]
    image = np.ascontiguousarray(np.broadcast_to(top * (1 - ramp) + bottom * ramp, (count, size, size, 3)))
    canvas = _Canvas(image, pose, fps)
    scale = canvas.scale

    skin = np.asarray(ident.skin, dtype=np.float32)
    shade = skin * 0.72
    box = canvas.box(0.0, 1.05, 0.6)
    bu, bv = canvas.uv(box)
    canvas.paint(_coverage(_segment(bu, bv, (0.0, 0.5), (0.0, 1.6), 0.25), scale), skin * 0.85, box)  # neck
    box = canvas.box(0.0, -0.3, 0.72)
    bu, bv = canvas.uv(box)
    canvas.paint(_coverage(_ellipse(bu, bv, 0.0, -0.3, ident.face_width * 1.08, 0.62), scale), ident.hair, box)
    box = canvas.box(0.0, 0.0, 0.87)
    bu, bv = canvas.uv(box)
    canvas.paint(_coverage(_ellipse(bu, bv, 0.0, 0.0, ident.face_width, ident.face_height), scale), skin, box)
    for side in (-1.0, 1.0):
        box = canvas.box(side * ident.face_width, -0.02, 0.14)  # ear, behind the face's edge
        bu, bv = canvas.uv(box)
        ear = _coverage(_ellipse(bu, bv, side * ident.face_width, -0.02, 0.07, 0.13), scale)
        face = _coverage(_ellipse(bu, bv, 0.0, 0.0, ident.face_width, ident.face_height), scale)
        canvas.paint(ear * (1.0 - face), skin * 0.92, box)

        if shown("AU06"):  # cheek: a raised, flushed patch under the eye
            box = canvas.box(side * 0.3, 0.1, 0.15)
            bu, bv = canvas.uv(box)
            cheek = _coverage(_ellipse(bu, bv, side * 0.3, 0.12 - 0.04 * au["AU06"], 0.12, 0.09), scale)
            canvas.paint(cheek * 0.6 * au["AU06"], (220.0, 90.0, 90.0), box)

        # Eye (AU05 wider, AU07 tighter, AU06 narrower from below, AU45 blink).
        centre_u = side * ident.eye_spacing
        box = canvas.box(centre_u, -0.12, 0.17)
        bu, bv = canvas.uv(box)
        openness = 1.0 + 1.2 * au["AU05"] - 0.55 * au["AU07"] - 0.35 * au["AU06"]
        eye_h = np.maximum(ident.eye_height * openness * (1.0 - 0.95 * au["AU45"]), 0.004)
        white = _coverage(_ellipse(bu, bv, centre_u, -0.12, ident.eye_width, eye_h), scale)
        canvas.paint(white, (240.0, 240.0, 235.0), box)
        iris = _coverage(_ellipse(bu, bv, centre_u + ident.gaze, -0.12, 0.05, 0.05), scale) * white
        canvas.paint(iris, (45.0, 32.0, 25.0), box)

        # Brow (AU01 inner end up, AU02 outer end up, AU04 down and together).
        box = canvas.box(side * (0.07 + ident.brow_length / 2), -0.38, ident.brow_length / 2 + 0.2)
        bu, bv = canvas.uv(box)
        inner = (side * (0.07 - 0.035 * au["AU04"]), -0.3 - 0.17 * au["AU01"] + 0.1 * au["AU04"])
        outer = (side * (0.07 + ident.brow_length), -0.29 - 0.16 * au["AU02"] + 0.02 * au["AU04"])
        brow = _coverage(_segment(bu, bv, inner, outer, ident.brow_thickness), scale)
        canvas.paint(brow, np.minimum(np.asarray(ident.hair) * 0.6, 90.0), box)  # dark enough on any skin

    # Forehead wrinkles (AU01 in the middle, AU02 across) and the brow-lowerer's vertical furrows (AU04).
    box = canvas.box(0.0, -0.5, 0.45)
    bu, bv = canvas.uv(box)
    if shown("AU01") or shown("AU02"):
        raise_alpha = np.maximum(au["AU01"], au["AU02"]) * 0.8
        reach = 0.14 + 0.16 * au["AU02"]
        for row in (-0.58, -0.66, -0.74):
            line = _segment(bu, bv, (-reach, row), (reach, row), 0.01)
            canvas.paint(_coverage(line, scale) * raise_alpha, shade, box)
    if shown("AU04"):
        for side in (-1.0, 1.0):
            furrow = _segment(bu, bv, (side * 0.035, -0.33), (side * 0.025, -0.22), 0.011)
            canvas.paint(_coverage(furrow, scale) * au["AU04"], shade * 0.8, box)

    # Nose with wrinkles (AU09) and nostrils (flared by AU09, lifted by AU10).
    box = canvas.box(0.0, 0.08, 0.2)
    bu, bv = canvas.uv(box)
    canvas.paint(_coverage(_segment(bu, bv, (0.0, -0.04), (0.0, 0.17), 0.016), scale) * 0.8, shade, box)
    for row in (-0.05, -0.01, 0.03) if shown("AU09") else ():
        wrinkle = _coverage(_segment(bu, bv, (-0.06, row), (0.06, row - 0.01), 0.009), scale)
        canvas.paint(wrinkle * au["AU09"], shade * 0.8, box)
    for side in (-1.0, 1.0):
        nostril = _ellipse(bu, bv, side * (0.05 + 0.03 * au["AU09"]), 0.2 - 0.03 * au["AU10"], 0.028, 0.018)
        canvas.paint(_coverage(nostril, scale), shade * 0.7, box)

    # Mouth: corners (AU12 up, AU15 down), width (AU20, AU12 wider; AU23 narrower), opening (AU25, AU26, AU10).
    box = canvas.box(0.0, 0.5, 0.46)
    bu, bv = canvas.uv(box)
    width = ident.mouth_width * (1.0 + 0.6 * au["AU20"] + 0.25 * au["AU12"] - 0.3 * au["AU23"])
    corner = -0.17 * au["AU12"] + 0.2 * au["AU15"] - 0.03 * au["AU20"]
    opening = (0.012 + 0.24 * au["AU26"] + 0.08 * au["AU25"] + 0.04 * au["AU10"]) * (1.0 - 0.7 * au["AU23"])
    lip = 0.034 * (1.0 - 0.6 * au["AU23"]) + 0.008
    centre_v = 0.43 - 0.02 * au["AU17"]
    q = np.clip((bu / width) ** 2, 0.0, 1.0)
    middle = centre_v + corner * q
    upper = middle - (0.5 * opening + 0.04 * au["AU10"]) * (1.0 - q)
    lower = middle + 0.5 * opening * (1.0 - q)
    inside = _coverage(width - np.abs(bu), scale)
    canvas.paint(_coverage(np.minimum(bv - upper + lip, lower + 1.2 * lip - bv), scale) * inside, ident.lips, box)
    gap = _coverage(np.minimum(bv - upper, lower - bv), scale) * inside
    canvas.paint(gap, (70.0, 18.0, 28.0), box)
    teeth_alpha = np.clip(2.2 * np.maximum(np.maximum(au["AU12"], au["AU20"]), au["AU10"]) - 0.4, 0.0, 1.0)
    if teeth_alpha.max() > 0.0:
        teeth = _coverage(np.minimum(bv - upper, upper + np.minimum(0.05, 0.45 * (lower - upper)) - bv), scale)
        canvas.paint(teeth * gap * teeth_alpha, (235.0, 230.0, 220.0), box)
    for side in (-1.0, 1.0) if shown("AU14") else ():  # dimples
        dimple = _coverage(_ellipse(bu, bv, side * (width + 0.03), centre_v + corner, 0.018, 0.025), scale)
        canvas.paint(dimple * au["AU14"], shade * 0.8, box)
    if shown("AU17"):  # chin crease
        chin = _segment(bu, bv, (-0.09, centre_v + 0.17), (0.09, centre_v + 0.17), 0.012)
        canvas.paint(_coverage(chin, scale) * au["AU17"], shade * 0.85, box)

    image *= ident.brightness
    image += 3.0 * rng.standard_normal((count, size, size, 1), dtype=np.float32)  # grey sensor noise
    return np.clip(image, 0, 255).astype(np.uint8)


def au_track(
    prototype: dict[str, float],
    intensity: float,
    *,
    frames: int,
    fps: float,
    rng: np.random.Generator,
    span: tuple[float, float] | None = None,
) -> Array:
    """``[frames, n_AU]`` intensities (0..1): ``prototype`` at ``intensity`` with onset, wobble, micro-motion, blinks.

    The expression lasts the whole clip (after a quick onset from 55%), or with ``span`` (start, end seconds)
    only then: a brief display at full ``intensity`` with ramps of :data:`src.data.synth.spec.BRIEF_RAMP` s, a relaxed face
    around it.
    """
    time = np.arange(frames) / fps
    track = np.zeros((frames, len(AU_INDEX)), dtype=np.float32)
    onset = rng.uniform(0.15, 0.5)
    rise = 0.55 + 0.45 * np.clip(time / onset, 0.0, 1.0) if span is None else brief_envelope(time, span)
    for name, weight in prototype.items():
        wobble = 1.0 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * time + rng.uniform(0, 2 * np.pi))
        track[:, AU_INDEX[name]] = weight * intensity * rise * wobble
    track += np.abs(rng.normal(0.0, 0.02, size=track.shape)).astype(np.float32)  # idle micro-movements
    blink = AU_INDEX["AU45"]
    track[:, blink] = 0.0
    moment = rng.uniform(0.2, 1.5)
    while moment < time[-1]:
        index = int(moment * fps)
        track[index, blink] = 1.0
        if index + 1 < frames:
            track[index + 1, blink] = 0.5
        moment += rng.uniform(1.5, 4.0)
    return np.clip(track, 0.0, 1.0)
