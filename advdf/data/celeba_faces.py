"""The faces of advdf's synthetic CelebA tree: real faces with CelebA attributes drawn on at known places.

Each image is one of the real faces of :func:`advdf.data.synthetic.identities` (LFW faces and the astronaut)
placed like an aligned CelebA face (178 x 218, eyes a little above the middle) over a textured background, with
shoulders, a neck and hair, small shift / scale / flip jitter and mild sensor noise. The 13 attributes AttGAN
edits (:data:`RENDERED_ATTRIBUTES`, a superset of StarGAN's 5 and STGAN's 5; drawn by
:func:`advdf.data.synthetic_celeba.sample_attributes`) are then rendered at fixed
face-relative places, so each one changes known pixels in a way a small generator can learn:

- ``Black_Hair`` / ``Blond_Hair`` / ``Brown_Hair``: the colour of every hair layer (neither: copper red).
- ``Bald``: the crown is skin with a highlight instead of hair.
- ``Bangs``: a fringe over the forehead.
- ``Male``: short hair; a female face gets long hair falling beside the face to the shoulders.
- ``Young``: smooth skin; an old face gets forehead lines, nasolabial folds and crow's feet.
- ``Bushy_Eyebrows``: thick dark brows above the eyes.
- ``Eyeglasses``: two dark rings with tinted lenses, a bridge and temples at the eyes.
- ``Mustache``: a dark band between nose and mouth.
- ``No_Beard``: CelebA's inverted name: ``-1`` renders a beard (dark, stippled lower face around the mouth).
- ``Mouth_Slightly_Open``: a dark mouth ellipse with a strip of teeth.
- ``Pale_Skin``: face, neck (and a bald crown) brightened and desaturated.

The other 27 CelebA columns are ``-1`` throughout. :func:`render_face` and :func:`attribute_region` are public so
tests can check that an attribute changes its region and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

from advdf.data.synthetic import identities
from advdf.errors import DataError

# The 40 attribute names in the order of the official list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)
ATTGAN_ATTRIBUTES = ("Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses",
                     "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young")
STARGAN_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
STGAN_ATTRIBUTES = ("Bangs", "Eyeglasses", "No_Beard", "Mouth_Slightly_Open", "Pale_Skin")
RENDERED_ATTRIBUTES = ATTGAN_ATTRIBUTES
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair")
HEIGHT, WIDTH = 218, 178  # aligned CelebA

# The value of each rendered attribute that draws nothing of its own (No_Beard and Young are "absences").
NEUTRAL = {name: name in ("Male", "No_Beard", "Young") for name in RENDERED_ATTRIBUTES}

_HAIR_RGB = {"Black_Hair": (0.07, 0.06, 0.06), "Blond_Hair": (0.86, 0.72, 0.44), "Brown_Hair": (0.38, 0.23, 0.12),
             None: (0.62, 0.30, 0.17)}
_BEARD_RGB = np.array([0.15, 0.11, 0.09], np.float32)
_FRAME_RGB = np.array([0.05, 0.05, 0.06], np.float32)
_EYES = ((-0.11, -0.2), (-0.11, 0.2))  # (v, u) of the eye centres, in face sides from the face centre
_NOISE_SIGMA = 2.0 / 255


@dataclass(frozen=True)
class FacePlan:
    """Everything random about one image except its attributes: rendered with other attributes, the same plan
    gives the same person, pose, background, clothes, textures and noise, so an attribute's effect on the pixels is
    exactly its own rendering.

    Attributes:
        identity: index into :func:`advdf.data.synthetic.identities`.
        cy: row of the face square's centre (pixels).
        cx: column of the face square's centre (pixels).
        side: side of the face square (pixels).
        flip: mirror the face.
        seed: background, clothes, hair tone, texture phases and the noise offset derive from it.
    """

    identity: int
    cy: float
    cx: float
    side: int
    flip: bool
    seed: int


def plan_image(seed: int, index: int) -> FacePlan:
    """The plan of image ``index`` of the tree with ``seed`` (independent of the tree's size)."""
    rng = np.random.default_rng([seed, index, 1])
    side = int(WIDTH * rng.uniform(0.46, 0.54))
    return FacePlan(identity=int(rng.integers(len(identities()))), cy=HEIGHT * 0.53 + rng.uniform(-4, 4),
                    cx=WIDTH / 2 + rng.uniform(-4, 4), side=side, flip=bool(rng.integers(2)),
                    seed=int(rng.integers(2**31)))


def _ellipse(u: np.ndarray, v: np.ndarray, cv: float, cu: float, rv: float, ru: float,
             feather: float = 0.0) -> np.ndarray:
    """Alpha of an ellipse in face coordinates; a feathered edge has support ``r < 1 + feather / 2`` exactly."""
    r = np.sqrt(((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2)
    if feather <= 0:
        return (r <= 1).astype(np.float32)
    return np.clip((1 - r) / feather + 0.5, 0, 1).astype(np.float32, copy=False)


def _band(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Alpha of a line at ``distance`` (face units) from its centre line: 1 on it, 0 beyond ``half_width``."""
    return np.clip(1 - np.abs(distance) / half_width, 0, 1).astype(np.float32, copy=False)


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Gaussian noise twice the canvas in each direction; an image reads its noise and grain at its own offset,
    which costs a slice instead of fresh draws for every image."""
    return np.random.default_rng(20240303).standard_normal((2 * HEIGHT, 2 * WIDTH, 4), dtype=np.float32)


@lru_cache(maxsize=256)
def _face_pixels(identity: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    face = cv2.resize(identities()[identity].astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    face = face.clip(0, 1)
    centre = face[int(0.35 * side):int(0.65 * side), int(0.3 * side):int(0.7 * side)]
    return face, np.median(centre.reshape(-1, 3), axis=0)


def _pale(rgb: np.ndarray) -> np.ndarray:
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    desaturated = rgb + 0.6 * (grey[..., None] - rgb)
    return 1 - 0.55 * (1 - desaturated)


@dataclass(frozen=True)
class _Layer:
    """An alpha map on a window of the canvas: everything outside the window is exactly untouched."""

    window: tuple[slice, slice]
    alpha: np.ndarray


class _Scene:
    """The grids and layers of one plan. Layers are computed on first use, each only on the window of the canvas
    its support can reach, so an image pays only for its own attributes and a small mouth costs a few hundred
    pixels instead of the whole canvas (whole-canvas layers made generation several times slower)."""

    def __init__(self, plan: FacePlan) -> None:
        self.plan = plan
        # face coordinates: column and row vectors, broadcast to (rows, cols) only inside a window
        self.u = ((np.arange(WIDTH, dtype=np.float32) + 0.5 - plan.cx) / plan.side)[None, :]
        self.v = ((np.arange(HEIGHT, dtype=np.float32) + 0.5 - plan.cy) / plan.side)[:, None]
        rng = np.random.default_rng(plan.seed)
        self.colours = rng.uniform(0.15, 0.85, (2, 3)).astype(np.float32)
        self.texture = rng.uniform(-1, 1, (2, 2, 3)).astype(np.float32)  # amplitudes and phases of the blotches
        self.clothes = rng.uniform(0.1, 0.8, 3).astype(np.float32)
        self.hair_tone = float(rng.uniform(0.9, 1.1))
        self.gain = float(rng.uniform(0.92, 1.08))
        self.phase = float(rng.uniform(0, 2 * np.pi))
        oy, ox = int(rng.integers(HEIGHT)), int(rng.integers(WIDTH))
        bank = _noise_bank()[oy:oy + HEIGHT, ox:ox + WIDTH]
        self.noise, self.grain = bank[..., :3], bank[..., 3]

    def window(self, v0: float, v1: float, u0: float, u1: float) -> tuple[slice, slice]:
        """The canvas rows and columns of the face-coordinate box [v0, v1] x [u0, u1] (one pixel of margin)."""
        p = self.plan
        y0, y1 = int(np.floor(p.cy + v0 * p.side)) - 1, int(np.ceil(p.cy + v1 * p.side)) + 1
        x0, x1 = int(np.floor(p.cx + u0 * p.side)) - 1, int(np.ceil(p.cx + u1 * p.side)) + 1
        return slice(max(y0, 0), min(max(y1, 0), HEIGHT)), slice(max(x0, 0), min(max(x1, 0), WIDTH))

    def grid(self, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        return self.u[:, window[1]], self.v[window[0], :]

    def ellipse(self, cv: float, cu: float, rv: float, ru: float, feather: float = 0.0) -> _Layer:
        reach = 1 + feather / 2
        window = self.window(cv - rv * reach, cv + rv * reach, cu - ru * reach, cu + ru * reach)
        return _Layer(window, _ellipse(*self.grid(window), cv, cu, rv, ru, feather))

    # -- layers behind the face --------------------------------------------------------------------------------
    @cached_property
    def background(self) -> np.ndarray:
        """A vertical colour ramp with soft blotches (a separable product of slow waves)."""
        ramp = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
        (ay, py), (ax, px) = self.texture
        rows = self.colours[0] * (1 - ramp) + self.colours[1] * ramp
        wave_y = ay * np.sin(2 * np.pi * (1.5 * ramp + py))
        wave_x = ax * np.sin(2 * np.pi * (1.2 * np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None] + px))
        return rows + (0.08 * wave_y) * wave_x

    @cached_property
    def shoulders(self) -> _Layer:
        return self.ellipse(1.2, 0, 0.55, 0.95, feather=0.05)

    @cached_property
    def neck(self) -> _Layer:
        window = self.window(0.3, 0.9, -0.17, 0.17)
        u, v = self.grid(window)
        return _Layer(window, ((np.abs(u) < 0.17) & (v > 0.3) & (v < 0.9)).astype(np.float32))

    @cached_property
    def long_hair(self) -> _Layer:
        layer = self.ellipse(0.25, 0, 0.75, 0.6, feather=0.1)
        u, _ = self.grid(layer.window)
        return _Layer(layer.window, layer.alpha * (np.abs(u) > 0.22))

    @cached_property
    def crown(self) -> _Layer:
        return self.ellipse(-0.2, 0, 0.36, 0.45, feather=0.06)

    @cached_property
    def face_layer(self) -> _Layer:
        return self.ellipse(0.02, 0, 0.46, 0.40, feather=0.12)

    def strands(self, window: tuple[slice, slice]) -> np.ndarray:
        """Multiplicative hair texture on ``window``: wavy strands plus grain, (rows, cols, 1)."""
        u, v = self.grid(window)
        waves = np.sin(2 * np.pi * (u * 14 + 0.5 * np.sin(2 * np.pi * v * 1.5 + self.phase)))
        return (1 + 0.18 * waves + 0.05 * self.grain[window])[..., None]

    # -- layers on the face -----------------------------------------------------------------------------------
    @cached_property
    def bangs(self) -> _Layer:
        layer = self.ellipse(-0.42, 0, 0.19, 0.40, feather=0.1)
        u, v = self.grid(layer.window)
        return _Layer(layer.window, layer.alpha * (v < -0.26 + 0.02 * np.sin(u * 50 + self.phase)))

    @cached_property
    def wrinkles(self) -> _Layer:
        window = self.window(-0.4, 0.32, -0.4, 0.4)
        u, v = self.grid(window)
        au = np.abs(u)
        lines = [_band(v - v0 - 0.01 * np.sin(u * 20 + self.phase), 0.011) * (au < 0.2) for v0 in (-0.37, -0.32)]
        fold = 0.11 + 0.25 * (v - 0.06)  # nasolabial fold: from the nose wing down to the mouth corner
        lines.append(_band(au - fold, 0.011) * ((v > 0.06) & (v < 0.3)))
        for k in (-1, 0, 1):  # crow's feet: three short rays out of each outer eye corner
            lines.append(_band(v + 0.11 - k * 0.9 * (au - 0.33), 0.01) * ((au > 0.33) & (au < 0.39)))
        return _Layer(window, np.maximum.reduce(lines))

    @cached_property
    def beard(self) -> _Layer:
        window = self.window(0.1, 0.55, -0.43, 0.43)
        u, v = self.grid(window)
        lower = _ellipse(u, v, 0.02, 0, 0.48, 0.42, feather=0.05) * (v > 0.1 + 0.6 * u**2)
        chin = _ellipse(u, v, 0.42, 0, 0.12, 0.22, feather=0.1)
        mouth_hole = _ellipse(u, v, 0.265, 0, 0.055, 0.125, feather=0.3)
        stipple = np.clip(0.8 + 0.2 * self.grain[window], 0.4, 1)
        return _Layer(window, np.maximum(lower, chin) * (1 - mouth_hole) * stipple)

    @cached_property
    def mustache(self) -> _Layer:
        window = self.window(0.12, 0.24, -0.16, 0.16)
        u, v = self.grid(window)
        return _Layer(window, 0.95 * _ellipse(u, v - 0.8 * u**2, 0.17, 0, 0.033, 0.13, feather=0.4))

    @cached_property
    def mouth(self) -> _Layer:
        return self.ellipse(0.265, 0, 0.045, 0.105, feather=0.2)

    @cached_property
    def teeth(self) -> _Layer:
        return self.ellipse(0.245, 0, 0.016, 0.075, feather=0.3)

    @cached_property
    def brows(self) -> _Layer:
        window = self.window(-0.26, -0.12, -0.35, 0.35)
        u, v = self.grid(window)
        arcs = [_ellipse(u, v + 1.5 * (u - cu) ** 2, -0.215, cu, 0.032, 0.12, feather=0.3) for _, cu in _EYES]
        return _Layer(window, np.maximum(*arcs) * np.clip(0.85 + 0.15 * self.grain[window], 0.5, 1))

    @cached_property
    def glasses(self) -> tuple[_Layer, _Layer]:
        """The frame and the lenses."""
        window = self.window(-0.24, 0.02, -0.47, 0.47)
        u, v = self.grid(window)
        rings, lenses = [], []
        for cv_, cu in _EYES:
            r = np.sqrt(((v - cv_) / 0.09) ** 2 + ((u - cu) / 0.13) ** 2)
            rings.append(_band(r - 1, 0.22))
            lenses.append((r < 1).astype(np.float32))
        bridge = _band(v - _EYES[0][0] + 0.02, 0.018) * (np.abs(u) < 0.08)
        temples = _band(v - _EYES[0][0] + 0.03, 0.016) * ((np.abs(u) > 0.32) & (np.abs(u) < 0.46))
        return _Layer(window, np.maximum.reduce([*rings, bridge, temples])), _Layer(window, np.maximum(*lenses))

    @cached_property
    def face(self) -> tuple[np.ndarray, np.ndarray]:
        """The identity's face on the face layer's window and its skin colour."""
        p = self.plan
        pixels, skin = _face_pixels(p.identity, p.side)
        if p.flip:
            pixels = pixels[:, ::-1]
        sy, sx = self.face_layer.window
        top, left = round(p.cy - p.side / 2), round(p.cx - p.side / 2)
        out = np.zeros((sy.stop - sy.start, sx.stop - sx.start, 3), np.float32)
        # the square may be smaller than the window (its alpha is zero there) or cut by the canvas border
        ys, xs = slice(max(top, sy.start), min(top + p.side, sy.stop)), slice(max(left, sx.start),
                                                                            min(left + p.side, sx.stop))
        out[ys.start - sy.start:ys.stop - sy.start, xs.start - sx.start:xs.stop - sx.start] = \
            pixels[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
        return out * self.gain, skin * self.gain


def _blend(image: np.ndarray, colour: np.ndarray, layer: _Layer) -> None:
    """Alpha-composite ``colour`` (broadcastable to the layer's window) onto ``image`` in place; exact where alpha
    is 0 (the pixel is kept bit for bit) or 1 (replaced), so an attribute's layer changes nothing beyond it."""
    a = layer.alpha[..., None]
    target = image[layer.window]
    target *= 1 - a
    target += colour * a


def _darken(image: np.ndarray, layer: _Layer, strength: float) -> None:
    image[layer.window] *= 1 - strength * layer.alpha[..., None]


def _resolve(attributes: Mapping[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(attributes) - set(RENDERED_ATTRIBUTES))
    if unknown:
        raise DataError(f"cannot render attributes {unknown}; rendered: {list(RENDERED_ATTRIBUTES)}")
    return {**NEUTRAL, **{k: bool(v) for k, v in attributes.items()}}


def render_face(plan: FacePlan, attributes: Mapping[str, bool]) -> np.ndarray:
    """The image of ``plan`` with ``attributes`` (missing ones take their :data:`NEUTRAL` value), float32 RGB in
    [0, 1], shape (218, 178, 3).

    Layers, back to front: background, shoulders, neck, long hair (not Male), crown (hair, or skin if Bald), the
    face, then wrinkles (not Young), beard (not No_Beard), mustache, open mouth, bushy brows, eyeglasses and bangs;
    noise last. Several hair colours at once render the first of :data:`HAIR_COLOURS` that is set.
    """
    a = _resolve(attributes)
    s = _Scene(plan)
    hair = np.array(_HAIR_RGB[next((name for name in HAIR_COLOURS if a[name]), None)], np.float32) * s.hair_tone
    face, skin = s.face
    if a["Pale_Skin"]:
        face, skin = _pale(face), _pale(skin)

    image = s.background.copy()
    _blend(image, s.clothes * (1 + 0.03 * s.grain[s.shoulders.window][..., None]), s.shoulders)
    _blend(image, skin * (1 - 0.25 * np.clip(s.grid(s.neck.window)[1] - 0.3, 0, 1))[..., None], s.neck)
    if not a["Male"]:
        _blend(image, hair * s.strands(s.long_hair.window), s.long_hair)
    if a["Bald"]:
        u, v = s.grid(s.crown.window)
        highlight = 0.18 * _ellipse(u, v, -0.45, -0.1, 0.08, 0.14, feather=1.0)[..., None]
        _blend(image, skin * (1 - 0.2 * np.clip(v + 0.2, 0, 1))[..., None] + highlight, s.crown)  # lit from above
    else:
        _blend(image, hair * s.strands(s.crown.window), s.crown)
    _blend(image, face, s.face_layer)
    if not a["Young"]:
        _darken(image, s.wrinkles, 0.5)
    if not a["No_Beard"]:
        _blend(image, _BEARD_RGB, s.beard)
    if a["Mustache"]:
        _blend(image, _BEARD_RGB, s.mustache)
    if a["Mouth_Slightly_Open"]:
        _blend(image, np.array([0.2, 0.05, 0.06], np.float32), s.mouth)
        _blend(image, np.array([0.9, 0.88, 0.82], np.float32), s.teeth)
    if a["Bushy_Eyebrows"]:
        _blend(image, np.array([0.12, 0.08, 0.06], np.float32), s.brows)
    if a["Eyeglasses"]:
        frame, lenses = s.glasses
        _darken(image, lenses, 0.3)
        _blend(image, _FRAME_RGB, frame)
    if a["Bangs"]:
        _blend(image, hair * s.strands(s.bangs.window), s.bangs)
    image += _NOISE_SIGMA * s.noise
    return np.clip(image, 0, 1, out=image)


def attribute_region(plan: FacePlan, name: str, attributes: Mapping[str, bool] | None = None) -> np.ndarray:
    """The pixels that setting ``name`` on top of ``attributes`` (default :data:`NEUTRAL`) may change, boolean
    (218, 178): the support of its layers, less what the opaque part of the face hides of the layers behind it
    (crown, long hair, neck). A hair colour colours every hair layer the other attributes draw."""
    a = _resolve(attributes or {})
    s = _Scene(plan)
    behind = {id(s.crown), id(s.long_hair), id(s.neck)}
    if name in HAIR_COLOURS:
        layers = [s.crown] * (not a["Bald"]) + [s.long_hair] * (not a["Male"]) + [s.bangs] * a["Bangs"]
    elif name == "Pale_Skin":
        layers = [s.face_layer, s.neck] + [s.crown] * a["Bald"]
    else:
        layers = {"Bald": [s.crown], "Bangs": [s.bangs], "Male": [s.long_hair], "Young": [s.wrinkles],
                  "No_Beard": [s.beard], "Mustache": [s.mustache], "Mouth_Slightly_Open": [s.mouth],
                  "Bushy_Eyebrows": [s.brows], "Eyeglasses": list(s.glasses)}.get(name)
        if layers is None:
            raise DataError(f"{name!r} is not rendered; rendered: {list(RENDERED_ATTRIBUTES)}")
    hidden = np.zeros((HEIGHT, WIDTH), bool)
    hidden[s.face_layer.window] = s.face_layer.alpha >= 1
    region = np.zeros((HEIGHT, WIDTH), bool)
    for layer in layers:
        visible = layer.alpha > 0
        if id(layer) in behind:
            visible &= ~hidden[layer.window]
        region[layer.window] |= visible
    return region
