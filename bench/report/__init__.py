"""The report: one module per section, each reading the stored cells of one or more runs
and writing Markdown, CSV and figures into ``reports/``.

May import: :mod:`rlhf`, :mod:`bench.sweep` (to read runs), :mod:`bench`'s shared modules.
"""
