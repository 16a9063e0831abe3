"""Reading and writing samples, deposits and rasters, keeping georeferencing with the data."""
