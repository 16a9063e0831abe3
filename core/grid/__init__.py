"""Gridding sample values or scores onto a north-up raster (inverse-distance weighting)."""
