"""Benchmarks that print one JSON object as their last line (`python -m attack bench NAME --json`)."""
