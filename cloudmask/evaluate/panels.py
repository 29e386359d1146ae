"""PNG panels for a person to look at: RGB | truth | model | peer ..., one row per scene. Pillow only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cloudmask import contract

# mask colours drawn over a dimmed greyscale of the scene, so the ground stays readable
CLOUD_RGB = (255, 215, 0)
SHADOW_RGB = (30, 110, 255)
IGNORE_RGB = (200, 0, 200)
TILE = 256
HEADER = 16


def rgb(reflectance: np.ndarray, bands) -> np.ndarray:
    """(H, W, B) reflectance -> (H, W, 3) uint8 true colour (B04, B03, B02), 2-98 % stretch per scene."""
    idx = [list(bands).index(b) for b in ("B04", "B03", "B02")]
    img = reflectance[..., idx].astype(np.float32)
    lo, hi = np.percentile(img, 2), np.percentile(img, 98)
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    return (img * 255).astype(np.uint8)


def overlay(base: np.ndarray, mask: np.ndarray, cloud_only: bool = False) -> np.ndarray:
    """Colour `mask` (0 clear, 1 cloud, 2 shadow, 255 ignore) over a dimmed grey version of `base`."""
    grey = (base.mean(axis=-1, keepdims=True) * 0.5).astype(np.uint8).repeat(3, axis=-1)
    out = grey.copy()
    out[mask == contract.CLOUD] = CLOUD_RGB
    if not cloud_only:
        out[mask == contract.SHADOW] = SHADOW_RGB
    out[mask == contract.NODATA] = IGNORE_RGB
    return out


def _tile(arr: np.ndarray, title: str) -> Image.Image:
    im = Image.fromarray(arr).resize((TILE, TILE), Image.NEAREST)
    canvas = Image.new("RGB", (TILE, TILE + HEADER), (255, 255, 255))
    canvas.paste(im, (0, HEADER))
    ImageDraw.Draw(canvas).text((3, 2), title[:40], fill=(0, 0, 0))
    return canvas


def panel(path: Path | str, reflectance: np.ndarray, bands, truth: np.ndarray, masks: list[tuple[str, np.ndarray]],
          cloud_only_truth: bool = False, title: str = "") -> Path:
    """Write RGB | truth | each (name, mask) side by side as one PNG."""
    base = rgb(reflectance, bands)
    tiles = [_tile(base, f"{title} RGB".strip()),
             _tile(overlay(base, truth, cloud_only_truth), "truth (cloud only)" if cloud_only_truth else "truth")]
    tiles += [_tile(overlay(base, m), name) for name, m in masks]
    legend_h = 14
    out = Image.new("RGB", (TILE * len(tiles), TILE + HEADER + legend_h), (255, 255, 255))
    for i, t in enumerate(tiles):
        out.paste(t, (i * TILE, 0))
    d = ImageDraw.Draw(out)
    y = TILE + HEADER + 1
    x = 3
    for name, colour in (("cloud", CLOUD_RGB), ("shadow", SHADOW_RGB), ("not scored", IGNORE_RGB)):
        d.rectangle([x, y + 2, x + 10, y + 11], fill=colour)
        d.text((x + 14, y), name, fill=(0, 0, 0))
        x += 90
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


def panel_rows(s, cands, masks) -> list[tuple[str, np.ndarray]]:
    """What a scene's panel shows after RGB and truth: one of our U-Nets, one baseline, one teacher variant.

    The widest variant the scene allows (6-band where it has B11 and B12); of several versions of one model
    the newest, the one the predictor serves."""
    shown = []
    widest_first = sorted(cands, key=lambda c: (-len(c.bands), -int(c.version) if str(c.version).isdigit() else 0))
    for kind in ("ours", "baseline"):
        for c in widest_first:
            if c.kind == kind and (c.name, s.name) in masks:
                shown.append((c.name, masks[(c.name, s.name)]))
                break
    for c in widest_first:  # the teacher variant for the scene's level, 6-band when the scene allows
        if c.kind == "peer" and c.level == s.level and not c.cloud_only and (c.name, s.name) in masks:
            shown.append((c.name, masks[(c.name, s.name)]))
            break
    return shown


def write_all(scene_list, cands, masks, out: Path) -> list[Path]:
    return [panel(out / f"{s.name}.png", s.reflectance, s.bands, s.truth, panel_rows(s, cands, masks),
                         cloud_only_truth=not s.shadow_labelled, title=s.name) for s in scene_list]
