"""The report: one module per section, each reading the stored cells of one or more runs
and writing Markdown, CSV and figures into ``reports/``.

:mod:`.build` runs the sections listed in its ``SECTIONS`` and lays out the front page;
:mod:`.section` is the contract they share (same inputs, same kind of output); :mod:`.runs`
reads run directories; :mod:`.stats` and :mod:`.bootstrap` are the statistics every section
uses, :mod:`.aggregate` ranks methods across tasks (rliable's IQM and probability of
improvement); :mod:`.figures` draws. A new section is one module with ``section(inputs)`` and one
entry in ``SECTIONS``.

May import: :mod:`rlhf`, :mod:`bench.sweep` (to read runs), :mod:`bench`'s shared modules.
"""
