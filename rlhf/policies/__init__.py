"""From preferences to policies: reference policies (:mod:`.reference`), preference data as a value
(:mod:`.data`: offline pairs, sampled pairs, a labels store, the exact population of an enumerable
task, with a simulated teacher's exact probabilities from :mod:`.exact`), the alignment methods behind
one registry (:mod:`.methods`; one module each, registered in order by :mod:`.builtins`:
:mod:`.rlhf_method`, :mod:`.dpo`, :mod:`.ipo`, :mod:`.cdpo`, :mod:`.slic`, :mod:`.cpl`), how a tabular
policy is fitted (:mod:`.fitting`: the batched optimiser; :mod:`.newton`: the exact population solver),
the metrics of a policy (:mod:`.evaluation`) and :func:`rlhf.align` (:mod:`.align`). Over-optimisation
(Gao et al., 2023): proxy rewards learned from pairs, ensembles and implicit rewards (:mod:`.proxies`),
exact best-of-n (:mod:`.best_of_n`) and the optimisation paths scored exactly (:mod:`.overoptimization`).

May import: :mod:`rlhf.core`, :mod:`rlhf.metrics`, :mod:`rlhf.preferences`, :mod:`rlhf.learning`,
:mod:`rlhf.training` (the task protocol, for annotations).
"""
