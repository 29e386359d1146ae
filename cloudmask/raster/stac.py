"""Sentinel-2 STAC items (pystac): which asset holds which band, the processing level and the DN offset.

Public Sentinel-2 catalogues name band assets two ways, and both are read:
- Element84 earth-search (v1): common names as keys -- "blue", "red", "nir", "nir08", "swir16", ... -- with
  "-jp2" twins of each (JPEG2000, requester pays), `eo:bands` names like "blue", and `raster:bands` scale/offset;
- Microsoft Planetary Computer (and earth-search v0): band names as keys -- "B02", "B8A", ... -- with `eo:bands`
  entries {"name": "B02", "common_name": "blue"}.
An asset's band is its key as a band name, else its key as a common name, else its one `eo:bands` / `bands` entry's
name or common name; where two assets give one band, the Cloud-Optimized GeoTIFF wins over JPEG2000 and a key
match over a band entry. "rededge" names three bands (B05..B07) and is never read as one.

Level and offset come from the item, as tags that transformer.level and the offset resolution already read:
PRODUCT_TYPE (s2:product_type, e.g. S2MSI2A) or PROCESSING_LEVEL (processing:level, or the collection id's
l1c / l2a); the DN offset, strongest first: the band assets' `raster:bands` offset and scale (offset / scale DN,
earth-search: -0.1 / 0.0001 = -1000), earth-search's `earthsearch:boa_offset_applied` (true: 0), the processing
baseline (s2:processing_baseline >= 04.00: -1000, older: 0). L2A items carry it as BOA_ADD_OFFSET, others as
RADIO_ADD_OFFSET (L1C's name for it, which says nothing of the level).
"""

from __future__ import annotations

import json
from urllib.parse import urljoin, urlsplit

from cloudmask import contract
from cloudmask.raster import bands as band_ops
from cloudmask.raster.errors import BadInput

from . import reference, remote

# eo common name -> Sentinel-2 band
COMMON_NAMES = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
                "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11",
                "swir22": "B12"}
MAX_ITEM_BYTES = 2 * 2**20
PB04 = (4, 0)  # processing baseline 04.00 (January 2022): DN carry +1000


def band_of(name) -> str | None:
    if not isinstance(name, str):
        return None
    return band_ops.normalise(name) or COMMON_NAMES.get(name.strip().lower())


# asset fields this module reads -> the JSON types they may have (None: absent or null)
_ASSET_FIELDS = {"href": (str,), "type": (str,), "eo:bands": (list,), "bands": (list,), "raster:bands": (list,)}
_JSON_TYPES = {str: "text", list: "a list", dict: "an object"}


def _check_assets(value: dict, what: str) -> None:
    """400 naming the asset and the field where the item's JSON has a field of the wrong type (the user's JSON:
    never an AttributeError / TypeError further on)."""
    assets = value.get("assets")
    if assets is None:
        return  # pystac says what is missing
    if not isinstance(assets, dict):
        raise BadInput(f"{what}: 'assets' must be an object, got {type(assets).__name__}")
    for key, asset in assets.items():
        if not isinstance(asset, dict):
            raise BadInput(f"{what}: asset {key!r} must be an object, got {type(asset).__name__}")
        for field, types in _ASSET_FIELDS.items():
            got = asset.get(field)
            if (got is not None or field == "href") and not isinstance(got, types):
                raise BadInput(f"{what}: asset {key!r} field {field!r} must be {_JSON_TYPES[types[0]]}, got "
                               f"{type(got).__name__}")


def _is_cog(asset) -> bool:
    media = (asset.media_type or "").lower()
    return "tiff" in media or urlsplit(asset.href).path.lower().endswith((".tif", ".tiff"))


def _band_entries(asset) -> list:
    fields = asset.extra_fields
    return list(fields.get("eo:bands") or fields.get("bands") or [])


def load(value, reader: remote.Reader | None = None, what: str = "stac_item"):
    """A pystac.Item from its JSON (text, bytes or a dict) or its URL (fetched through `reader`, under its policy)."""
    import pystac

    href = None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and not value.lstrip().startswith("{"):
        if reader is None:
            raise BadInput(f"{what} is a URL but no reader was given")
        href = value.strip()
        value = reader.fetch(href, MAX_ITEM_BYTES, what)
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadInput(f"{what} is not JSON: {e}") from None
    if not isinstance(value, dict) or value.get("type") != "Feature":
        raise BadInput(f"{what} is not a STAC item (a GeoJSON Feature with assets)")
    _check_assets(value, what)
    try:
        item = pystac.Item.from_dict(value, href=href, preserve_dict=False)
    except Exception as e:  # pystac raises KeyError, TypeError, STACTypeError... on malformed items
        raise BadInput(f"{what} is not a valid STAC item: {type(e).__name__}: {e}") from None
    if href is not None and item.get_self_href() is None:
        item.set_self_href(href)
    return item


def band_assets(item, what: str = "stac_item") -> dict[str, str]:
    """{Sentinel-2 band: absolute href} for the item's band assets (see the module's doc)."""
    best: dict[str, tuple] = {}
    base = item.get_self_href()
    for key, asset in item.assets.items():
        entries = _band_entries(asset)
        by_key = band_of(key)
        band = by_key
        if band is None and len(entries) == 1 and isinstance(entries[0], dict):
            band = band_of(entries[0].get("name")) or band_of(entries[0].get("common_name"))
        if band is None:
            continue
        href = asset.href
        if not urlsplit(href).scheme:
            if not base:
                raise BadInput(f"{what}: asset {key!r} has the relative href {href!r} and the item has no URL")
            href = urljoin(base, href)
        rank = (_is_cog(asset), by_key is not None)
        if band not in best or rank > best[band][0]:
            best[band] = (rank, href, asset)
    return {b: best[b][1] for b in contract.S2_BANDS if b in best}


def level_tags(item, bands: dict | None = None) -> dict:
    """Tags that say the item's processing level and DN offset (see the module's doc)."""
    props = item.properties
    tags = {"STAC_ITEM": item.id}
    product = str(props.get("s2:product_type") or "").strip()
    level = None
    if product:
        tags["PRODUCT_TYPE"] = product
        level = "L2A" if "2A" in product.upper() else "L1C" if "1C" in product.upper() else None
    plevel = str(props.get("processing:level") or "").strip().upper()
    collection = str(item.collection_id or "").lower()
    if level is None and plevel in ("L1C", "L2A"):
        level = plevel
    if level is None:
        level = "L2A" if "l2a" in collection else "L1C" if "l1c" in collection else None
    if level is not None:
        tags["PROCESSING_LEVEL"] = {"L1C": "Level-1C", "L2A": "Level-2A"}[level]
    offset = _offset(item, bands)
    if offset is not None:
        tags["BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"] = f"{offset:g}"
    baseline = props.get("s2:processing_baseline")
    if baseline is not None:
        tags["S2_PROCESSING_BASELINE"] = str(baseline)
    return tags


def _offset(item, bands: dict | None) -> float | None:
    assets = [a for k, a in item.assets.items() if band_of(k) is not None and _is_cog(a)]
    offsets = set()
    for a in assets:
        for rb in a.extra_fields.get("raster:bands") or []:
            if isinstance(rb, dict) and "offset" in rb:
                try:
                    scale = float(rb.get("scale", 1.0 / contract.DEFAULT_SCALE))
                    offsets.add(round(float(rb["offset"]) / scale, 6))
                except (TypeError, ValueError, ZeroDivisionError):
                    continue
    if len(offsets) == 1:
        return offsets.pop()
    if len(offsets) > 1:
        raise BadInput(f"stac_item {item.id}: band assets give different offsets {sorted(offsets)}")
    applied = item.properties.get("earthsearch:boa_offset_applied")
    if applied is True:
        return 0.0
    baseline = item.properties.get("s2:processing_baseline")
    if baseline is not None:
        try:
            major, _, minor = str(baseline).partition(".")
            return contract.L2A_PB04_OFFSET if (int(major), int(minor or 0)) >= PB04 else 0.0
        except ValueError:
            return None
    return None


def read(reader: remote.Reader, value, window=None, max_pixels: int | None = None, pick=None):
    """The window of a STAC item's band assets as a Raster (reference.read): the item's bands as descriptions,
    its level and offset as tags."""
    item = load(value, reader)
    assets = band_assets(item)
    if not assets:
        raise BadInput(f"stac_item {item.id}: no Sentinel-2 band assets (B02.. or blue, nir, swir16 ...)")
    names = list(assets)
    return reference.read(reader, [assets[b] for b in names], window=window, max_pixels=max_pixels, pick=pick,
                          names=names, tags=level_tags(item))
