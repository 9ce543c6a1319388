"""Data cleaning: fingerprints, duplicates and quality flags, replayed review decisions, leakage, reports."""
