"""GeoAnomaly's Processing provider and algorithms (see base.py for writing a new one)."""
