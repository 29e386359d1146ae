"""Raster library of the cloudmask service: decode, read by reference, write masks.

The data path as plain functions, one concept per module; the transformer, the block-wise client
(cloudmask.blocks), evaluate, the preview and the bench all use these same functions.

decode     GeoTIFF bytes -> the pixels asked for (window, bands), within a pixel and decode budget
bands      which Sentinel-2 band each of the file's bands is; which model variant those bands feed
scale      nodata, DN -> reflectance (scale, offset), the checks on both
level      the processing level (L1C / L2A) from a parameter, tags, bands or radiometry
tile       the chip plan: overlapping chips of a raster, batches of them
stitch     chips' probabilities blended back into one raster; mask; cover fractions
encode     mask -> GeoTIFF with the input's georeferencing
cog        masks as Cloud Optimized GeoTIFFs
remote     the URI input policy (allow-listed prefixes, egress checks)
reference  a window of a referenced (remote) raster read into decode's Raster
stac       STAC items: band assets, level and offset
errors     BadInput (the request is wrong) and OverBudget (the request is too large)
"""
