"""Judging anomaly and prospectivity maps against known deposits (AUC protocol, success-rate curves)."""
