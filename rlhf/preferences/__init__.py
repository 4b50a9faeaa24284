"""Where preferences come from: preference models (:mod:`.models`: partial return, regret; a
registry), the one labeller protocol (:mod:`.labeller`), simulated teachers (the B-Pref family
under a preference model), a person's recorded answers, and fitting a teacher's parameters to
those answers.

May import: :mod:`rlhf.core`, :mod:`rlhf.metrics`.
"""
