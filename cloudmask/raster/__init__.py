"""Raster library of the cloudmask service: decode, read by reference, write masks."""
