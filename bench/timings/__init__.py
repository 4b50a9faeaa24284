"""Timings: the seed's own algorithm as the speed reference, and the report of the
pytest-benchmark hot paths (``bench/hotpaths``).

May import: :mod:`rlhf`, :mod:`bench`'s shared modules.
"""
