"""The timings report's section on a batched round's phases, from benchmark rows."""

import pandas as pd

from bench.timings import report


def phase_rows(medians):
    """``seed_batch_phases`` rows as ``timings_frame`` makes them: ``{(phase, seeds): median_s}``."""
    return pd.DataFrame([{"group": "seed_batch_phases", "implementation": phase, "seeds": seeds, "median_s": t}
                         for (phase, seeds), t in medians.items()])


def test_the_phase_section_adds_the_phases_and_names_the_one_that_gains_least():
    medians = {("rollout", 1): 6e-4, ("rollout", 100): 8e-3, ("label", 1): 2e-4, ("label", 100): 1e-3,
               ("update", 1): 8e-4, ("update", 100): 4e-3, ("plan", 1): 2e-4, ("plan", 100): 1e-3}
    text = "\n".join(report._phases(phase_rows(medians)))
    # rollout 100 × 0.6 / 8 = 7.5×; label and plan 20×; update 20×; sum 100 × 1.8 / 14 = 12.9×
    assert "| sum of phases |            1.80 |            14.00 |" in text
    assert "12.86" in text and "The rollout gains least (7.5×)" in text
    assert "[1, 25] × [25, 100]" in text                     # sizes from the seed-gridworld preset


def test_a_run_missing_a_phase_or_a_batch_size_gets_no_section():
    complete = {(p, s): 1e-3 for p in ("rollout", "label", "update", "plan") for s in (1, 100)}
    assert report._phases(phase_rows(complete))
    for missing in [("label", 1), ("plan", 100)]:
        assert report._phases(phase_rows({k: v for k, v in complete.items() if k != missing})) == []
    assert report._phases(phase_rows({}).reindex(columns=["group", "implementation", "seeds", "median_s"])) == []


def test_the_seed_run_paragraph_names_the_largest_phase_from_the_measurements():
    medians = {("rollout", 1): 6e-4, ("rollout", 100): 8e-3, ("label", 1): 2e-4, ("label", 100): 1e-3,
               ("update", 1): 8e-4, ("update", 100): 4e-3, ("plan", 1): 2e-4, ("plan", 100): 1e-3}
    assert report._largest_phase(phase_rows(medians), 350) == (
        " Of a one-seed round's phases (below), the update (the learner's 350 calls) takes the largest share: 44%.")
    slower = medians | {("rollout", 1): 2e-3}
    assert "the rollout takes the largest share: 62%" in report._largest_phase(phase_rows(slower), 350)
    assert report._largest_phase(phase_rows({k: v for k, v in medians.items() if k != ("plan", 1)}), 350) == ""


def test_sizes_in_the_prose_are_written_from_the_numbers():
    assert report._power(2, 1 << 17) == "2¹⁷" and report._power(10, 1000 * 1000) == "10⁶"
