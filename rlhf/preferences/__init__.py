"""Where preferences come from: preference models (:mod:`.models`: partial return, regret; a
registry), tie models (:mod:`.ties`: Rao–Kupper, Davidson), rankings of K segments
(:mod:`.rankings`: Plackett–Luce draws and the B-Pref noise on a ranking), the one labeller protocol
(:mod:`.labeller`), simulated teachers (the B-Pref family under a preference model, for pairs and
rankings), a person's recorded answers, and fitting a teacher's parameters to those answers.

May import: :mod:`rlhf.core`, :mod:`rlhf.metrics`.
"""
