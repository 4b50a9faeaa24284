"""What every report section takes and returns: the :class:`Section` protocol.

A section answers one question from the runs. Every section gets the same
:class:`ReportInputs` (the cells, the per-configuration summary, the loaded runs and the
folder to write into) and returns a :class:`SectionOutput`: its Markdown for the front
page and the files it wrote. A section writes nothing but into ``inputs.stage`` and
returns empty output when the runs hold nothing for it. :mod:`bench.report.build` runs
the sections of its ``SECTIONS`` list in order and lays out the front page; adding a
section is one module with a ``section(inputs)`` function and one entry in that list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from .runs import Run

SUCCESS_TARGET = 0.9
"""The success rate over seeds that "reaches the target" means in every section."""


@dataclass(frozen=True)
class ReportInputs:
    """Everything a section may read (built once by :func:`bench.report.build.report_inputs`)."""

    cells: pd.DataFrame
    """Every cell of the runs, one row per (configuration, seed): ``cells.csv`` pooled."""
    summary: pd.DataFrame
    """One row per configuration of the main tables (:func:`bench.report.stats.summarize`): every
    cell but those a section aggregates its own way (random worlds, imported environments)."""
    main: pd.DataFrame
    """``summary`` without the query-rule families (the configurations the convergence and
    teacher sections are about)."""
    extra: tuple[str, ...]
    """Configuration fields beyond the always-shown ones that vary in ``summary``."""
    stage: Path
    """The folder to write files into (published by :mod:`bench.outputs` when all sections are done)."""
    runs: tuple[Run, ...] = ()
    """The runs' stores, in the order given."""
    stored: Mapping[str, dict] = field(default_factory=dict)
    """Every run's stored rows by cell key (histories, metrics, provenance)."""
    target: float = SUCCESS_TARGET
    """The success target."""
    aligned: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The alignment cells (with ``method``, ``beta``, ``reference``), one row per (configuration, seed):
    the alignment section's; ``cells`` and the summaries hold every other cell."""
    ranked: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The cells of every setting that holds a ranking or tie cell (those and the pairs they are compared
    with): the rankings section's; ``cells`` and the summaries hold every other cell."""
    paths: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The over-optimisation cells (with ``proxy``, ``gold``, ``reference``; their paths are in
    ``stored``' histories), one row per (configuration, seed): the over-optimisation section's."""


@dataclass(frozen=True)
class Figure:
    """A figure a section wrote, as the front page's Figures section shows it."""

    path: Path
    title: str
    """What it shows, in words (the gallery's heading; not the file name)."""
    caption: str
    """What to look at in it: the axes, what a line or band is, and what the reader should notice,
    read off the numbers where it states a fact."""


@dataclass(frozen=True)
class SectionOutput:
    """What a section hands back."""

    lines: list[str] = field(default_factory=list)
    """Its Markdown on the front page (in the order of ``SECTIONS``); empty: not on the page."""
    files: list[Path] = field(default_factory=list)
    """Every file it wrote into ``inputs.stage``."""
    figures: list[Figure] = field(default_factory=list)
    """Every figure among ``files``, with its title and caption: the front page's Figures section
    shows them all (a section's own Markdown refers to them there)."""
    notes: list[str] = field(default_factory=list)
    """Notes for the gallery (such as why a figure is left out); they open it."""


class Section(Protocol):
    """A report section: the same inputs, the same kind of output."""

    def __call__(self, inputs: ReportInputs, /) -> SectionOutput: ...
