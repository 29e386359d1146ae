"""Augmentations a sensor and a season bring: geometry, illumination, processing level, noise.

Geometric ones move image and label together; radiometric ones touch only the image.
"""

from __future__ import annotations

import numpy as np

# Path radiance (atmospheric scattering added at top of atmosphere) per band, as a range in reflectance.
# Rayleigh scattering goes ~ lambda^-4, so blue gets the most; SWIR almost none. Used to turn L2A surface
# reflectance into L1C-like TOA reflectance (and the reverse, clipped at zero).
PATH_RADIANCE = {
    "B02": (0.04, 0.11), "B03": (0.02, 0.07), "B04": (0.01, 0.045), "B05": (0.008, 0.035), "B06": (0.005, 0.025),
    "B07": (0.004, 0.02), "B08": (0.002, 0.018), "B8A": (0.002, 0.015), "B11": (0.0, 0.006), "B12": (0.0, 0.004),
}
P_LEVEL_SHIFT = 0.5


def geometric(rng: np.random.Generator, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random rot90 and flip, applied identically to image (H, W, B) and label (H, W)."""
    k = int(rng.integers(4))
    image, label = np.rot90(image, k, axes=(0, 1)), np.rot90(label, k, axes=(0, 1))
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def dark_object_path(image: np.ndarray, bands: tuple[str, ...], q: float = 1.0) -> np.ndarray:
    """Per-band path radiance of a top-of-atmosphere image, estimated by dark-object subtraction.

    The darkest pixels of a scene (water, deep shade) reflect almost nothing at the surface, so what a
    top-of-atmosphere image still shows there is mostly atmosphere. The q-th percentile per band, capped at the
    top of PATH_RADIANCE's range (a bright crop has no dark object, and its percentile is ground, not air).
    """
    flat = image.reshape(-1, image.shape[-1])
    dark = np.percentile(flat, q, axis=0).astype(np.float32)
    cap = np.array([PATH_RADIANCE.get(b, (0.0, 0.01))[1] for b in bands], np.float32)
    return np.clip(dark, 0.0, cap)


def to_level(rng: np.random.Generator, image: np.ndarray, bands: tuple[str, ...], level: str
             ) -> tuple[np.ndarray, np.ndarray]:
    """Move an image between L2A (surface) and L1C (top of atmosphere) looks; also return its path radiance.

    L2A input: with p=P_LEVEL_SHIFT add path radiance and a transmittance factor (-> L1C-like).
    L1C input: with p=P_LEVEL_SHIFT remove a path radiance (-> L2A-like, clipped at 0).
    Most training scenes are L2A and the 6-band model must also read L1C, so v2 raised p from 0.35 to 0.5 and
    widened the path radiance to the Rayleigh-dominated TOA-minus-BOA spread over land (blue ~0.04..0.11).
    Either: with p=0.05 the +0.1 of a mis-scaled processing-baseline-04.00 L2A product whose BOA_ADD_OFFSET
    (-1000 DN) was not applied.

    The second value is the additive atmospheric part of the returned image (per band): a cloud shadow dims the
    ground's reflected light but not the light the air above it scatters, so `synth.add_clouds` shades only
    image - path. Zero for a surface-reflectance look; the added path for L2A -> L1C; a dark-object estimate for
    an L1C scene left as it is (v3; v1/v2 shaded the path too, which made L1C shadows far too dark in blue).
    """
    img = image
    path = np.zeros(len(bands), np.float32)
    is_l1c = level.upper() == "L1C"
    if rng.random() < P_LEVEL_SHIFT:
        pr = np.array([rng.uniform(*PATH_RADIANCE.get(b, (0.0, 0.01))) for b in bands], np.float32)
        if not is_l1c:
            img = img * np.float32(rng.uniform(0.9, 1.0)) + pr
            path = pr
        else:
            img = np.clip(img - pr, 0.0, None) / np.float32(rng.uniform(0.9, 1.0))
            is_l1c = False
    elif is_l1c:
        path = dark_object_path(img, bands)
    if rng.random() < 0.05:
        img = img + np.float32(0.1)
        path = path + np.float32(0.1)  # an additive bias, not light from the ground: shadows do not dim it
    return img.astype(np.float32), path.astype(np.float32)


def radiometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Illumination (sun elevation / season) gain, small per-band gain and offset, and sensor noise."""
    b = image.shape[-1]
    gain = np.float32(rng.uniform(0.8, 1.2)) * rng.uniform(0.96, 1.04, size=b).astype(np.float32)
    offset = rng.uniform(-0.01, 0.01, size=b).astype(np.float32)
    img = image * gain + offset
    if rng.random() < 0.5:
        sigma = rng.uniform(0.0, 0.01, size=b).astype(np.float32)
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.clip(img, 0.0, 1.0).astype(np.float32)  # the transformer clips to the contract's 0..1
