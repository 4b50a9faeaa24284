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


def call_rows(calls, top="`torch.bmm` ×101"):
    """Phase rows with call counts, as ``timings_frame`` makes them: ``{(phase, seeds): calls}``; every
    phase takes 1 ms, and a third of its calls are builtins."""
    return phase_rows({k: 1e-3 for k in calls}).assign(
        calls=list(calls.values()), builtin_calls=[n // 3 for n in calls.values()], top_calls=top)


def test_the_call_counts_sit_beside_the_phase_table_and_say_whether_batching_multiplies_them():
    calls = {("rollout", 1): 60, ("rollout", 100): 60, ("label", 1): 90, ("label", 100): 90,
             ("update", 1): 450, ("update", 100): 450, ("plan", 1): 150, ("plan", 100): 151}
    text = "\n".join(report._phases(call_rows(calls)))
    assert text.index("| phase ") < text.index("calls, one seed |")           # after the phase table
    assert "|   calls, 100 seeds |" in text and "| sum of phases |" in text.split("calls, one seed")[1]
    assert "750 |" in text and "751 |" in text                                 # the sums
    assert "| update        |               450 |" in text and "16.7" in text   # 1 ms / 60 calls, in µs
    assert "1.00× the calls of a one-seed round: batching does not multiply" in text
    assert "the update makes the most (450); its most frequent: `torch.bmm` ×101" in text
    per_seed = calls | {("update", 100): 450 * 100}                            # a Python loop over seeds
    assert "**A 100-seed round makes 60.4× the calls" in "\n".join(report._phases(call_rows(per_seed)))
    assert report._phase_calls(phase_rows({k: 1e-3 for k in calls})) == []     # a run from before the counts


def test_the_phase_benchmarks_count_a_rounds_calls_and_batching_does_not_multiply_them(tmp_path):
    """The counts come from the benchmarks ``bench timings`` runs (their ``extra_info``), measured."""
    import json
    import subprocess
    import sys

    from helpers import ROOT

    out = tmp_path / "phases.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "bench/hotpaths/test_seed_batch_phases.py", "-q", "-p",
                             "no:cacheprovider", f"--benchmark-json={out}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    raw = json.loads(out.read_text())
    counts = {(b["extra_info"]["implementation"], b["extra_info"]["seeds"]): b["extra_info"]
              for b in raw["benchmarks"]}
    assert sorted(counts) == sorted((p, s) for p in ("rollout", "label", "update", "plan") for s in (1, 100))
    for (phase, seeds), info in counts.items():
        assert 0 < info["builtin_calls"] <= info["calls"], (phase, seeds)
        assert info["top_calls"] and all(n > 0 for _, n in info["top_calls"])
        if seeds == 100:       # a batch shares its calls: they do not grow with the seeds
            assert info["calls"] < 2 * counts[phase, 1]["calls"], (phase, info["calls"], counts[phase, 1]["calls"])
    text = "\n".join(report._phases(report.timings_frame(raw)))
    assert "calls, one seed |" in text and "batching does not multiply" in text


def test_the_seed_run_paragraph_names_the_largest_phase_from_the_measurements():
    medians = {("rollout", 1): 6e-4, ("rollout", 100): 8e-3, ("label", 1): 2e-4, ("label", 100): 1e-3,
               ("update", 1): 8e-4, ("update", 100): 4e-3, ("plan", 1): 2e-4, ("plan", 100): 1e-3}
    assert report._largest_phase(phase_rows(medians), 350) == (
        " Of a one-seed round's phases (below), the update (the learner's 350 aten calls) takes the largest share: 44%.")
    slower = medians | {("rollout", 1): 2e-3}
    assert "the rollout takes the largest share: 62%" in report._largest_phase(phase_rows(slower), 350)
    assert report._largest_phase(phase_rows({k: v for k, v in medians.items() if k != ("plan", 1)}), 350) == ""


def test_sizes_in_the_prose_are_written_from_the_numbers():
    assert report._power(2, 1 << 17) == "2¹⁷" and report._power(10, 1000 * 1000) == "10⁶"


def reference_json(two_threads_factor: float = 1.0, load: dict | None = None) -> dict:
    """The committed timings JSON, without any recorded load (or with ``load`` for every benchmark),
    the two-thread medians scaled by ``two_threads_factor``."""
    import copy
    import json

    from helpers import ROOT

    raw = copy.deepcopy(json.loads((ROOT / "reports" / "timings.json").read_text()))
    for b in raw["benchmarks"]:
        for key in ("load_before", "load_after", "cpu_s", "wall_s", "threads"):
            b["extra_info"].pop(key, None)
        if b["extra_info"]["group"] == "soft_vi_threads":
            b["stats"]["median"] *= two_threads_factor
        if load is not None:
            b["extra_info"].update(load)
    raw["machine_info"]["cores"] = 2
    return raw


def markdown(raw: dict) -> str:
    """The timings page of a benchmark JSON (no memory probe: peak memory unmeasured)."""
    return report._markdown(report.timings_frame(raw).assign(peak_mib=float("nan")), raw["machine_info"])


def test_every_target_is_marked_met_or_missed_from_the_numbers():
    raw = reference_json()
    frame = report.timings_frame(raw)
    text = markdown(raw)
    seed_run = frame[(frame.group == "seed_run") & (frame.implementation == "fast")]["speedup"].iloc[0]
    assert f"**{seed_run:.1f}×** faster" in text
    assert f"target ≥ 30×: **{'met' if seed_run >= 30 else 'missed'}**" in text
    targets = text.split("## Targets")[1].split("## ")[0]
    bullets = [line for line in targets.splitlines() if line.startswith("- ")]
    assert bullets and all("**met**" in b or "**missed**" in b for b in bullets)
    met, total = (int(x) for x in targets.split(" targets met")[0].split("**")[-1].split(" of "))
    assert total == targets.count("**met**") + targets.count("**missed**") and met == targets.count("**met**")
    # ratios say which way they read
    assert "bigger is better" in text and "5 members cost" in text and "smaller is better" in text
    assert "speed-up per seed, batched (bigger is better)" in text


def test_a_two_thread_figure_slower_than_one_thread_is_commented_and_load_is_flagged():
    quiet = markdown(reference_json(two_threads_factor=30.0))
    assert "**slower than one thread**" in quiet and "contention cannot be ruled out" in quiet
    assert "Load not recorded" in quiet
    busy = reference_json(two_threads_factor=30.0, load={"load_before": 2.6, "load_after": 2.4, "cpu_s": 1.0,
                                                         "wall_s": 1.0, "threads": 1})
    text = markdown(busy)
    line = next(b for b in text.splitlines() if b.startswith("- soft VI at N = 1000"))
    assert "⚠ taken under load (2.6 on 2 cores" in line and "**slower than one thread**" in line
    assert "| load" in text and "2.60 ⚠" in text
    calm = markdown(reference_json(load={"load_before": 1.0, "load_after": 1.1, "cpu_s": 1.0, "wall_s": 1.0,
                                         "threads": 1}))
    assert "⚠" not in calm and "None was taken under load" in calm


def test_a_starved_benchmark_is_flagged_even_at_low_load():
    raw = reference_json(load={"load_before": 1.0, "load_after": 1.0, "cpu_s": 1.0, "wall_s": 1.0, "threads": 1})
    for b in raw["benchmarks"]:
        if b["extra_info"]["group"] == "soft_vi_threads":
            b["extra_info"].update(threads=2, cpu_s=1.1, wall_s=1.0)      # 2 threads got 1.1 CPU seconds a second
    frame = report.timings_frame(raw)
    flagged = report.contended(frame, 2)
    assert flagged[frame.group == "soft_vi_threads"].eq(True).all()
    assert flagged[frame.group != "soft_vi_threads"].eq(False).all()


def test_the_benchmarks_record_the_machine_load(tmp_path):
    import json
    import subprocess
    import sys

    from helpers import ROOT

    out = tmp_path / "b.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "bench/hotpaths/test_soft_vi.py", "-q", "-p",
                             "no:cacheprovider", "-k", "gridworld and not reference and 5-0.0",
                             f"--benchmark-json={out}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    (bench,) = json.loads(out.read_text())["benchmarks"]
    info = bench["extra_info"]
    assert info["threads"] == 1 and info["wall_s"] > 0 and info["cpu_s"] >= 0
    assert info["load_before"] >= 0 and info["load_after"] >= 0


def test_the_regret_learner_s_cost_is_a_ratio_per_case_and_met_only_when_every_case_is_within_10x():
    def rows(regret):
        return pd.DataFrame([{"group": "learner_update", "task": task, "implementation": kind, "median_s": t}
                             for task, (partial, slow) in regret.items()
                             for kind, t in (("partial", partial), ("regret", slow))])
    fast = rows({"seed-gridworld": (1e-3, 4e-3), "random-world-5": (3e-3, 6e-3)})
    verdicts = report._regret_verdict(fast)
    assert verdicts == {report.REGRET_TARGET: "**met**"}
    text = "\n".join(report._regret_targets(fast, verdicts, lambda *a: ""))
    assert "seed-gridworld 4.0×, random-world-5 2.0×" in text and "**met**" in text
    slow = rows({"seed-gridworld": (1e-3, 35e-3), "random-world-5": (3e-3, 6e-3)})     # one case over 10×
    assert report._regret_verdict(slow) == {report.REGRET_TARGET: "**missed**"}
    other = pd.DataFrame([{"group": "seed_run", "task": "seed-gridworld", "implementation": "fast", "median_s": 0.2}])
    assert report._regret_verdict(other) == {} and report._regret_targets(other, {}, None) == []
