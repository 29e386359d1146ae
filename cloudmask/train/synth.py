"""Synthetic clouds and cloud shadows composited onto real clear-sky reflectance, with exact labels.

Method: after Czerkawski et al. (2023), "SatelliteCloudGenerator: Controllable Cloud and Shadow Synthesis
for Multi-Spectral Optical Satellite Images", Remote Sensing 15(17):4138 (the PyPI package
`satellite-cloud-generator` implements it in PyTorch). We reimplement the ideas in numpy to keep PyTorch out of
the project:

* cloud opacity = power-law ("fractal", 1/f^beta) spectral noise, thresholded to a target cover with a soft edge,
  scaled to a peak opacity: thick clouds (0.85..1) or thin / semi-transparent clouds (0.3..0.85), optionally both
  layered;
* a spectral cloud signature: cloud reflectance nearly flat across VNIR (B02..B08, blue a little brighter),
  lower in SWIR (B11 x 0.55..1.05, B12 x 0.35..0.85 since v4, lower for ice/thin cirrus-like layers), with internal
  brightness texture (amplitude 0.1..0.45, so clouds are textured, not flat); VNIR level of thick clouds
  0.22..0.9 and of thin ones 0.18..0.6 (moderately bright clouds, not only bright cores); since v5, 40 % of
  thick clouds also have broad shaded parts down to 25..60 % of that level (never below 0.1: grey cloud); thin clouds are more transparent at longer wavelengths (per-band opacity = alpha**gamma_b,
  gamma_b >= 1 growing with wavelength);
* composite per band: out = (1 - a_b) * ground + a_b * cloud_b;
* shadows: the labelled-cloud mask shifted along the anti-solar azimuth by h * tan(sun zenith) / pixel size
  (drawn directly as 6..96 px: h * tan(zenith) / 10 m for low/mid clouds, e.g. h 0.3..2 km at the zenith
  angles 20..65 deg Sentinel-2 sees; taller clouds' shadows fall outside a chip), blurred a
  little (penumbra), and applied to the ground *before* the cloud: ground * (1 - s * (1 - f_b)), where s is the
  shadow strength (1 under clouds of opacity >= 0.7, less under thinner ones) and f_b the diffuse (skylight)
  fraction that remains in shadow: 0.06..0.35 at B08, scaled by (842 nm / lambda_b)^k with k 1.2..2.5, so about
  0.1..0.9 in blue and 0.01..0.15 in the SWIR. 90% of cloud layers cast one.
  On a top-of-atmosphere image only the ground's part is shaded, not the path radiance of the air (v3).

Labels (documented thresholds): cloud where the base (VNIR) opacity > CLOUD_THRESHOLD (0.2); shadow where the
shifted, blurred cloud mask > SHADOW_THRESHOLD (0.5) and not cloud; clear elsewhere. Haze below the cloud
threshold stays "clear" and casts no shadow.

Why 0.2 (v2; v1 used 0.3): the labelling conventions our peers and teacher follow mark semi-transparent cloud as
cloud — CloudSEN12 (Aybar et al. 2022, Sci. Data 9:782) labels "thin cloud" wherever the surface is still visible
through a cloud, and ukis-csmask (Wieland et al. 2019, RSE 230:111203) merges thick and thin cloud into its
"cloud" class. At opacity 0.2 a cloud of VNIR reflectance >= 0.2 moves a typical land pixel by several
hundredths of reflectance, a visible whitening that such labels call thin cloud; below it the layer stays
"clear" haze. This was changed after seeing v1's validation scores, but set from these conventions, not from the
validation pixels or labels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import gaussian_filter

from cloudmask.contract import CLEAR, CLOUD, SHADOW

CLOUD_THRESHOLD = 0.2
SHADOW_THRESHOLD = 0.5
P_SHADED = 0.4  # share of thick clouds with shaded parts (v5)
SHADED_FLOOR = 0.1  # VNIR reflectance of the darkest shaded cloud: grey, not black
MAX_SHIFT = 96  # px; canvas margin so clouds outside the chip can cast shadows into it

# Per-band cloud signature relative to the VNIR level, and opacity exponent ranges (thin clouds more
# transparent at longer wavelengths).
# Water-cloud SWIR reflectance relative to the VNIR level (v4; v1-v3: B11 0.55..0.9, B12 0.35..0.75). Liquid
# water absorbs at 1.6 and 2.2 um, the more the larger the droplets, so the ratio spans small-droplet clouds
# and fog (B11 close to the VNIR level) to large-droplet ones. v3's narrow band let the 6-band net learn "cloud
# only if SWIR is well below VNIR" and call real clouds with B11 ~ VNIR clear; see the 6-band v4 model card.
SWIR_WATER = {"B11": (0.55, 1.05), "B12": (0.35, 0.85)}
_VNIR = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A")
# Central wavelengths (nm, Sentinel-2A MSI): the light left in a cloud shadow is skylight, whose share of the
# illumination falls steeply with wavelength (Rayleigh ~ lambda^-4, aerosol ~ lambda^-1..-2).
WAVELENGTH_NM = {"B01": 443, "B02": 490, "B03": 560, "B04": 665, "B05": 705, "B06": 740, "B07": 783, "B08": 842,
                 "B8A": 865, "B09": 945, "B10": 1375, "B11": 1610, "B12": 2190}


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Gaussian random field with power spectrum ~ 1/f^beta, scaled to 0..1."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp
    field = np.fft.irfft2(spec, s=(h, w))
    lo, hi = field.min(), field.max()
    return ((field - lo) / (hi - lo + 1e-12)).astype(np.float32)


def cloud_opacity(rng: np.random.Generator, shape: tuple[int, int], cover: float, peak: float,
                  softness: float, beta: float) -> np.ndarray:
    """Opacity 0..peak covering about `cover` of the area (before the soft edge)."""
    n = fractal_noise(rng, shape, beta)
    t = np.quantile(n, 1.0 - cover)
    span = max(1e-3, softness * (n.max() - t))
    a = np.clip((n - t) / span, 0.0, 1.0)
    return (peak * a).astype(np.float32)


@dataclasses.dataclass
class CloudParams:
    cover: float
    thick: bool
    peak: float
    level: float  # VNIR cloud reflectance
    shift: tuple[int, int]  # shadow shift (dy, dx) in px
    diffuse: float  # fraction of illumination left in shadow at B08 (842 nm)
    with_shadow: bool
    angstrom: float = 1.8  # how fast that fraction falls with wavelength: f_b = f_B08 * (842 nm / lambda_b)^angstrom


def sample_params(rng: np.random.Generator) -> CloudParams:
    thick = rng.random() < 0.6
    cover = float(rng.uniform(0.05, 0.7)) if rng.random() < 0.85 else float(rng.uniform(0.7, 0.98))
    peak = float(rng.uniform(0.85, 1.0)) if thick else float(rng.uniform(0.3, 0.85))
    level = float(rng.uniform(0.22, 0.9)) if thick else float(rng.uniform(0.18, 0.6))
    dist = float(rng.uniform(6, MAX_SHIFT))
    az = float(rng.uniform(0, 2 * np.pi))
    shift = (int(round(dist * np.sin(az))), int(round(dist * np.cos(az))))
    return CloudParams(cover, thick, peak, level, shift, float(rng.uniform(0.06, 0.35)), rng.random() < 0.9,
                       float(rng.uniform(1.2, 2.5)))


def cloud_signature(rng: np.random.Generator, bands: tuple[str, ...], level: float, thick: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-band cloud reflectance and opacity exponent gamma_b."""
    refl, gamma = [], []
    ice = (not thick) and rng.random() < 0.5
    for b in bands:
        if b in _VNIR:
            tilt = {"B02": 1.05, "B03": 1.02}.get(b, 1.0)
            refl.append(level * tilt * rng.uniform(0.97, 1.03))
            gamma.append(1.0 if thick else {"B02": 1.0, "B03": 1.05, "B04": 1.1}.get(b, 1.2))
        elif b == "B11":
            refl.append(level * (rng.uniform(0.3, 0.6) if ice else rng.uniform(*SWIR_WATER["B11"])))
            gamma.append(1.0 if thick else 1.5)
        elif b == "B12":
            refl.append(level * (rng.uniform(0.2, 0.45) if ice else rng.uniform(*SWIR_WATER["B12"])))
            gamma.append(1.0 if thick else 1.7)
        else:
            refl.append(level)
            gamma.append(1.0)
    return np.asarray(refl, np.float32), np.asarray(gamma, np.float32)


def shaded_tops(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Broad brightness factor for a thick cloud deck whose flanks and lower parts lie in the shade of its own
    towers or of a higher layer (v5): a smooth field from 1 down to 1 - depth (depth 0.4..0.75). add_clouds
    keeps the shaded VNIR reflectance >= SHADED_FLOOR. Such grey, still opaque parts are cloud by every
    labelling convention (the label follows opacity, not brightness); v1-v4 drew thick clouds only within
    +-22 % of their level, so the nets could learn "cloud = bright"."""
    shade = fractal_noise(rng, shape, float(rng.uniform(3.0, 3.8)))
    depth = float(rng.uniform(0.4, 0.75))
    return (1.0 - depth * shade).astype(np.float32)


def diffuse_fraction(bands: tuple[str, ...], at_b08: float, angstrom: float) -> np.ndarray:
    """Share of the illumination a cloud shadow keeps per band (skylight): at_b08 at 842 nm, more in the blue,
    much less in the SWIR (v3; v1/v2 used one 0.15..0.55 value for all bands, +0.1 in B02 and +0.05 in B03, so
    their synthetic shadows were too bright in B11/B12 next to real ones)."""
    lam = np.array([WAVELENGTH_NM.get(b, 842) for b in bands], np.float32)
    return np.minimum(0.9, at_b08 * (842.0 / lam) ** angstrom).astype(np.float32)


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a 2-D array by (dy, dx), filling with zeros (no wrap-around)."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


@dataclasses.dataclass
class Composite:
    image: np.ndarray  # (H, W, B) float32
    label: np.ndarray  # (H, W) uint8: CLEAR / CLOUD / SHADOW
    opacity: np.ndarray  # (H, W) base cloud opacity
    shadow: np.ndarray  # (H, W) shadow strength 0..1 (how much direct light is removed)
    footprint: np.ndarray  # (H, W) shifted, blurred cloud mask: the shadow label is footprint > SHADOW_THRESHOLD
    params: CloudParams | None


def add_clouds(rng: np.random.Generator, ground: np.ndarray, bands: tuple[str, ...],
               params: CloudParams | None = None, path: np.ndarray | None = None) -> Composite:
    """Composite synthetic clouds (and their shadows) onto `ground` (H, W, B reflectance).

    `path` (per band, default 0) is the additive atmospheric part of `ground` (top-of-atmosphere images):
    shadows dim only ground - path, since the air between the shadow and the sensor still scatters light.
    """
    h, w, _ = ground.shape
    p = params or sample_params(rng)
    m = MAX_SHIFT
    canvas = (h + 2 * m, w + 2 * m)
    beta = float(rng.uniform(2.4, 3.6))
    big = cloud_opacity(rng, canvas, p.cover, p.peak, float(rng.uniform(0.15, 0.6)), beta)
    if p.thick and rng.random() < 0.3:  # a thin layer around / beside the thick one
        thin = cloud_opacity(rng, canvas, float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.15, 0.45)), 0.8, beta)
        big = np.maximum(big, thin)
    alpha = big[m : m + h, m : m + w]
    if p.with_shadow:
        # Only labelled cloud casts shadow (the sub-threshold haze layer does not); darkness grows with cloud
        # opacity (full at >= 0.7). A small blur gives a penumbra; the label is the blurred footprint > 0.5.
        casting = (big > CLOUD_THRESHOLD).astype(np.float32)
        footprint = gaussian_filter(_shift(casting, *p.shift), sigma=1.0)[m : m + h, m : m + w]
        strength = gaussian_filter(_shift(casting * np.minimum(1.0, big / 0.7), *p.shift), sigma=1.0)[m : m + h, m : m + w]
        sh = np.where(footprint > 1e-3, strength, 0.0).astype(np.float32)
    else:
        footprint = sh = np.zeros_like(alpha)

    refl, gamma = cloud_signature(rng, bands, p.level, p.thick)
    # Internal cloud brightness variation (sunlit tops vs self-shadowed flanks): real clouds are textured.
    amp = float(rng.uniform(0.1, 0.45))
    texture = 1.0 + amp * (fractal_noise(rng, (h, w), float(rng.uniform(1.8, 2.8))) - 0.5)
    if p.thick and rng.random() < P_SHADED:
        texture = np.maximum(texture * shaded_tops(rng, (h, w)), SHADED_FLOOR / p.level)
    diffuse = diffuse_fraction(bands, p.diffuse, p.angstrom)

    img = ground.astype(np.float32)
    shade = 1.0 - sh[..., None] * (1.0 - diffuse[None, None, :])
    if path is None:
        img = img * shade
    else:
        pth = np.asarray(path, np.float32)[None, None, :]
        img = pth + np.clip(img - pth, 0.0, None) * shade
    a_b = alpha[..., None] ** gamma[None, None, :]
    img = (1.0 - a_b) * img + a_b * (refl[None, None, :] * texture[..., None])
    img = img.astype(np.float32)

    label = np.full((h, w), CLEAR, np.uint8)
    cloud = alpha > CLOUD_THRESHOLD
    label[(footprint > SHADOW_THRESHOLD) & ~cloud] = SHADOW
    label[cloud] = CLOUD
    return Composite(img, label, alpha, sh, footprint, p)
