"""The preference-learning loop as explicit state and one function per phase.

A run over a batch of seeds holds a :class:`Setting` fixed (task, configuration, keys, labeller,
the two preference models, the task's truths) and threads a :class:`LoopState` (the learned
model, its learner, the policy acting on it) through the rounds. A round is five phases, as
imitation's ``PreferenceComparisons.train`` names them, over state passed in and out as purejaxrl's
``make_train`` threads it (:func:`run_round`)::

    query_pairs → label_pairs → update_reward → plan_policy → evaluate_round

then :func:`seed_results` reads each seed's result at a checkpoint. :func:`rlhf.train` drives
them; :func:`rlhf.session_pairs` calls :func:`query_pairs` alone.

Shapes: ``[B, ...]`` with B the batch of seeds (``keys.shape``); a round asks ``n`` pairs of
segments of ``T`` steps. The learner updates its parameters and optimiser moments in place
(preallocated buffers: copying them every round would cost what batching saves); everything
else a phase changes it returns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..core.keys import Keys
from ..core.planning import expected_returns, uniform_policy
from ..core.rollout import Trajectories, rollout, step_rewards
from ..core.truths import TaskTruths, true_margins, truths_of
from ..learning.ensemble import Ensemble, bootstrap_weights, member_keys, member_mean
from ..learning.learner import RewardLearner
from ..learning.learner_models import LearnerModel, learner_model
from ..learning.queries import QUERY_RULES, QueryRule
from ..learning.rankings import RankingLearner
from ..learning.rewards import LearnedReward, RewardModel
from ..metrics import preference_accuracies
from ..preferences.labeller import Labeller, Labels, Query
from ..preferences.models import PARTIAL_RETURN, PreferenceModel, preference_model, score_margins
from .config import TrainConfig
from .protocol import Task
from .results import RoundRecord, RunResult, history_rows

INIT, SAMPLE, TEACHER, HELDOUT, BOOTSTRAP = range(5)
"""Purposes of the random streams (:meth:`Keys.fold`): a new teacher leaves the sampled states alone.
``HELDOUT`` is the held-out pairs' (:data:`rlhf.core.truths.HELDOUT_KEYS`, seed 0's for every seed)."""


@dataclass(frozen=True)
class Setting:
    """What a run over a batch of seeds holds fixed."""

    task: Task
    config: TrainConfig
    seeds: tuple[int, ...]
    keys: Keys
    """One key per seed, shape ``[B]``."""
    labeller: Labeller
    teacher_model: PreferenceModel
    """The labeller's preference model: what the steps of a query are worth to it."""
    learner_model: LearnerModel
    """The learner's strategy: what it fits, how, and how it acts on it (its preference model:
    ``learner_model.preference_model``)."""
    query_rule: QueryRule
    truths: TaskTruths
    length: int
    """Steps per segment, T."""
    may_skip: bool
    """Whether the labeller can leave pairs unanswered (the learner then masks them)."""
    may_tie: bool = True
    """Whether the labeller's answers can be ties (a ranking learner then keeps the tables for them)."""


@dataclass(frozen=True)
class LoopState:
    """What changes from round to round."""

    reward_model: LearnedReward
    """What planning, queries and metrics read: the members, or their :class:`Ensemble`."""
    members: RewardModel
    """What the learner fits: ``theta[B, F]``, or ``[B, E, F]`` for E ensemble members."""
    learner: RewardLearner
    policy: torch.Tensor
    """``pi[B, S, A]``: the policy acting on ``reward_model`` (what on-policy pairs are rolled out from)."""
    fitted: tuple[tuple[Trajectories, Trajectories, Labels], ...] = ()
    """The pairs ``([B, n, T], [B, n, T], labels)`` of each round the learner's last update fitted (``fit="round"``:
    the round's; ``"all"``: every round's so far), where the metrics compare that fit with the truth's
    (:func:`compares_fit`); else empty. References to the rounds' tensors, never changed."""


def prepare(task: Task, config: TrainConfig, seeds: list[int], keys: Keys) -> Setting:
    """The setting of a run of ``config`` on ``task`` for ``seeds`` (their ``keys``)."""
    labeller = config.labeller()
    if config.rank > 2 and not getattr(labeller, "ranks", False):
        raise ValueError(f"teacher {str(labeller)!r} answers pairs only: rank={config.rank} needs a labeller that "
                         "ranks (an rlhf.Teacher without a tie model)")
    teacher_model = preference_model(getattr(labeller, "preference_model", PARTIAL_RETURN))   # a model or its name
    return Setting(task, config, tuple(seeds), keys, labeller, teacher_model,
                   learner_model(config.learner_model), QUERY_RULES[config.query], truths_of(task),
                   config.segment_length or task.horizon, bool(getattr(labeller, "may_skip", True)),
                   bool(getattr(labeller, "may_tie", True)))


def start(setting: Setting) -> LoopState:
    """The state before the first round: fresh models (the learner model says which: the task's reward
    model, or a free ``[S, A]`` table), their learner, and the policy acting on them."""
    task, cfg, keys = setting.task, setting.config, setting.keys.fold(INIT)

    def new_model(keys: Keys) -> RewardModel:
        return setting.learner_model.new_model(task, keys)

    members: RewardModel
    reward_model: LearnedReward
    if cfg.ensemble == 1:
        members = reward_model = new_model(keys)
    else:                          # members [B, E, F]: the learner fits them as rows, like seeds
        members = new_model(member_keys(keys, cfg.ensemble))
        reward_model = Ensemble(members)
    if cfg.ranked:
        learner = setting.learner_model.learner(members, task, cfg, setting.may_skip, may_tie=setting.may_tie)
    else:
        learner = setting.learner_model.learner(members, task, cfg, setting.may_skip)
    return LoopState(reward_model, members, learner, plan_policy(setting, reward_model))


def query_pairs(setting: Setting, state: LoopState, index: int) -> tuple[Trajectories, Trajectories]:
    """Round ``index``'s pairs ``([B, n, T], [B, n, T])``: rolled out from the behaviour its query rule
    names (the current policy, or uniform actions), or chosen by an active rule from a pool of
    ``oversample · n`` rolled out from it."""
    cfg, rule, mdp = setting.config, setting.query_rule, setting.task.mdp
    n, keys = cfg.pairs_in_round(index), setting.keys.fold(SAMPLE, index)
    behaviour = uniform_policy(mdp) if rule.uniform else state.policy
    if rule.choose is None:
        return rollout(mdp, behaviour, 2 * n, setting.length, keys).split()
    pool_1, pool_2 = rollout(mdp, behaviour, 2 * cfg.oversample * n, setting.length, keys).split()
    members = state.members
    table, features = setting.learner_model.scores(members, setting.task, cfg, members.theta.dim() - 1)  # [B, (E,) F]
    table = table if cfg.ensemble > 1 else table.unsqueeze(-2)
    chosen = rule.choose(n, features(pool_1), features(pool_2), table)
    return pool_1.pick(chosen), pool_2.pick(chosen)


def label_pairs(setting: Setting, index: int, first: Trajectories, second: Trajectories) -> Labels:
    """The labeller's answers to round ``index``'s pairs, ``[B, n]`` (a custom labeller's shapes
    broadcast): it is asked with the steps' scores under its preference model."""
    cfg, truths = setting.config, setting.truths
    scores = setting.teacher_model.step_scores(truths, cfg.discount)
    query = Query(first, second, step_rewards(scores, first), step_rewards(scores, second),
                  setting.teacher_model.score_range(truths, cfg.discount), setting.keys.fold(TEACHER, index),
                  index * cfg.round_size)
    answers = setting.labeller.answer(query)
    batch, n = setting.keys.shape, first.states.shape[-2]
    return Labels(answers.prefer_first.expand(*batch, n), answers.answered.expand(*batch, n),
                  torch.as_tensor(answers.entropy).expand(batch))


def update_reward(setting: Setting, state: LoopState, index: int, first: Trajectories, second: Trajectories,
                  labels: Labels) -> torch.Tensor:
    """Fit the round's labels (``fit="round"``), or every label so far (``fit="all"``: the learner keeps
    them); ``[B]`` the last epoch's loss (the members' mean in an ensemble, each member fitted on its
    own bootstrap resample of the pairs it fits, drawn under the round's key)."""
    cfg = setting.config
    answered = labels.answered if setting.may_skip else None
    if cfg.ensemble == 1:
        return torch.as_tensor(state.learner.update(first, second, labels.prefer_first, answered))
    n = labels.prefer_first.shape[-1]
    fitted = n if cfg.fit == "round" else index * cfg.round_size + n          # pairs the members fit
    weights = bootstrap_weights(setting.keys.fold(BOOTSTRAP, index), cfg.ensemble, fitted)   # [B, E, N]
    loss = state.learner.update(first, second, labels.prefer_first, answered, weights=weights)
    return member_mean(torch.as_tensor(loss), -1)


def plan_policy(setting: Setting, reward_model: LearnedReward) -> torch.Tensor:
    """``pi[B, S, A]``: how the learner's preference model acts on each seed's learned table
    (planning on a learned reward, or ``softmax(τ·Â)`` of learned advantages)."""
    task, cfg = setting.task, setting.config
    table = reward_model.reward()
    if table.dim() == setting.keys.key.dim() + 1:        # state rewards [B, S] -> [B, S, 1]
        table = table.unsqueeze(-1)
    return setting.learner_model.policy(task.mdp, table, task.horizon, cfg.discount, cfg.temperature)


def evaluate_round(setting: Setting, policy: torch.Tensor, loss: torch.Tensor, labels: Labels,
                   ) -> dict[str, torch.Tensor]:
    """The round's history entries (:data:`~rlhf.training.results.HISTORY_KEYS`), ``[B]`` each: the
    exact expected true return of ``policy`` over a segment, the loss, the labeller's entropy and
    the pairs answered."""
    task = setting.task
    return {"true_return": expected_returns(task.mdp, policy, task.true_reward, setting.length),
            "loss": torch.as_tensor(loss), "entropy": labels.entropy,
            "answered": labels.answered.sum(-1).double()}


def run_round(setting: Setting, state: LoopState, index: int,
              ) -> tuple[LoopState, RoundRecord, dict[str, torch.Tensor]]:
    """Round ``index``: the five phases; returns the next state, the round's record and its history entries."""
    if setting.config.ranked:
        return run_ranked_round(setting, state, index)
    first, second = query_pairs(setting, state, index)
    labels = label_pairs(setting, index, first, second)
    loss = update_reward(setting, state, index, first, second, labels)
    policy = plan_policy(setting, state.reward_model)
    entries = evaluate_round(setting, policy, loss, labels)
    fitted = state.fitted
    if compares_fit(setting):
        fitted = (*(fitted if setting.config.fit == "all" else ()), (first, second, labels))
    return (dataclasses.replace(state, policy=policy, fitted=fitted),
            RoundRecord(index, first, second, labels, state.reward_model), entries)


# ------------------------------------------------------------------ rankings and ties
def query_rankings(setting: Setting, state: LoopState, index: int) -> Trajectories:
    """Round ``index``'s queries of K = ``rank`` segments, ``[B, n, K, T]``, rolled out from the behaviour
    its (sampling) query rule names: segment k of query i is trajectory ``k·n + i`` of the round's
    rollout (at K = 2, :func:`query_pairs`' pairs)."""
    cfg, mdp = setting.config, setting.task.mdp
    n, K, T = cfg.queries_in_round(index), cfg.rank, setting.length
    behaviour = uniform_policy(mdp) if setting.query_rule.uniform else state.policy
    traj = rollout(mdp, behaviour, K * n, T, setting.keys.fold(SAMPLE, index))
    batch = setting.keys.shape
    return Trajectories(*(x.view(*batch, K, n, T).transpose(-3, -2).contiguous() for x in (traj.states, traj.actions)))


def label_rankings(setting: Setting, index: int, segments: Trajectories) -> Labels:
    """The labeller's rankings of round ``index``'s queries ``segments[B, n, K, T]`` (``Labels.ranking``
    ``[B, n, K]``, ``tied`` ``[B, n, K − 1]``), asked with the steps' scores under its preference model."""
    cfg, truths = setting.config, setting.truths
    scores = step_rewards(setting.teacher_model.step_scores(truths, cfg.discount), segments)    # [B, n, K, T]
    first, second = _segment(segments, 0), _segment(segments, 1)
    query = Query(first, second, scores[..., 0, :], scores[..., 1, :],
                  setting.teacher_model.score_range(truths, cfg.discount), setting.keys.fold(TEACHER, index),
                  cfg.queries_before(index), segments=segments, segment_scores=scores)
    answers = setting.labeller.answer(query)
    if answers.ranking is None:
        raise ValueError(f"teacher {str(setting.labeller)!r} gave no ranking (Labels.ranking) to queries of "
                         f"{cfg.rank} segments")
    batch, (n, K) = setting.keys.shape, segments.states.shape[-3:-1]
    tied = answers.tied if answers.tied is not None else torch.zeros((*answers.ranking.shape[:-1], K - 1),
                                                                      dtype=torch.bool)
    return Labels(answers.prefer_first.expand(*batch, n), answers.answered.expand(*batch, n),
                  torch.as_tensor(answers.entropy).expand(batch), answers.ranking.expand(*batch, n, K),
                  tied.expand(*batch, n, K - 1))


def update_ranked(setting: Setting, state: LoopState, index: int, segments: Trajectories, labels: Labels,
                  ) -> torch.Tensor:
    """:func:`update_reward` for rankings and ties: the learner (a
    :class:`~rlhf.learning.rankings.RankingLearner`) fits the round's rankings, or at K = 2 its pair
    labels (0.5 a tie), or with ``fit="all"`` every query so far."""
    cfg = setting.config
    answered = labels.answered if setting.may_skip else None
    learner = state.learner
    assert isinstance(learner, RankingLearner)
    pair = None if labels.ranking is not None else labels.prefer_first
    if cfg.ensemble == 1:
        return torch.as_tensor(learner.update_ranked(segments, labels.ranking, labels.tied, pair, answered))
    n = labels.prefer_first.shape[-1]
    fitted = n if cfg.fit == "round" else cfg.queries_before(index) + n
    weights = bootstrap_weights(setting.keys.fold(BOOTSTRAP, index), cfg.ensemble, fitted)   # [B, E, N]
    loss = learner.update_ranked(segments, labels.ranking, labels.tied, pair, answered, weights=weights)
    return member_mean(torch.as_tensor(loss), -1)


def run_ranked_round(setting: Setting, state: LoopState, index: int,
                     ) -> tuple[LoopState, RoundRecord, dict[str, torch.Tensor]]:
    """:func:`run_round` for rankings (``rank > 2``) or ties: query (K segments a query; pairs at K = 2)
    → label → update → plan → evaluate. A round whose comparisons do not reach a ranking's cost asks
    nothing (loss NaN, nothing answered) and keeps the policy."""
    cfg = setting.config
    batch = setting.keys.shape
    if cfg.rank == 2:
        first, second = query_pairs(setting, state, index)
        labels = label_pairs(setting, index, first, second)
        segments = Trajectories(torch.stack([first.states, second.states], -2),
                                torch.stack([first.actions, second.actions], -2))
        record_segments = None
    elif cfg.queries_in_round(index) == 0:
        nothing = torch.zeros(*batch, 0, dtype=torch.int64, device=setting.keys.device)
        labels = Labels(nothing.float(), nothing.bool(), torch.zeros(batch))
        entries = evaluate_round(setting, state.policy, torch.full(batch, torch.nan), labels)
        empty = Trajectories(nothing.unsqueeze(-1), nothing.unsqueeze(-1))
        return state, RoundRecord(index, empty, empty, labels, state.reward_model), entries
    else:
        segments = record_segments = query_rankings(setting, state, index)
        labels = label_rankings(setting, index, segments)
        first, second = _segment(segments, 0), _segment(segments, 1)
    loss = update_ranked(setting, state, index, segments, labels)
    policy = plan_policy(setting, state.reward_model)
    entries = evaluate_round(setting, policy, loss, labels)
    record = RoundRecord(index, first, second, labels, state.reward_model, record_segments)
    return dataclasses.replace(state, policy=policy), record, entries


def _segment(segments: Trajectories, k: int) -> Trajectories:
    """Segment ``k`` of every query, ``[..., n, T]``."""
    return Trajectories(segments.states[..., k, :], segments.actions[..., k, :])


def heldout_accuracy(setting: Setting, reward_model: LearnedReward) -> torch.Tensor:
    """``[B]`` agreement with the noiseless teacher of the learner's own preference model on the
    task's held-out pairs (:meth:`~rlhf.core.truths.TaskTruths.heldout_pairs`, one set for every
    seed and budget): the sign of the learned margin against the true one, true ties left out."""
    cfg = setting.config
    first, second = setting.truths.heldout_pairs(cfg.heldout_pairs, setting.length, cfg.discount, cfg.temperature)
    scores = preference_model(setting.learner_model.preference_model).step_scores(setting.truths, cfg.discount)
    truth = true_margins(scores, first, second)
    table, features = setting.learner_model.scores(reward_model, setting.task, cfg, setting.keys.key.dim())  # [B, F]
    learned = score_margins(table, features(first), features(second))
    return preference_accuracies(learned, truth.expand_as(learned))


def compares_fit(setting: Setting) -> bool:
    """Whether a run's metrics compare the learner's fit with the truth's on the pairs it last fitted
    (:func:`truth_loss_metrics`): where its learner model fits a reward
    (:attr:`~rlhf.learning.learner_models.LearnerModel.truth_loss`: partial, regret; not advantage) on
    pairs (not rankings or ties: another likelihood), one model per seed (an ensemble's members each fit
    their own bootstrap resample, and no one table fitted the pairs). Every task has a true reward, so
    the truth's loss exists wherever this holds."""
    cfg = setting.config
    return setting.learner_model.truth_loss and not cfg.ranked and cfg.ensemble == 1


def truth_loss_metrics(setting: Setting, state: LoopState) -> list[dict[str, float]]:
    """Per seed, the learner's fit against the truth on the pairs its last update fitted (``state.fitted``;
    the answered ones where the labeller can skip, as the learner drops the rest): ``loss_gap`` =
    L(learned) − L(truth) and ``loss_above_truth`` = 1.0 where that is > 0, else 0.0 (both NaN with no
    pair answered). L is the mean Bradley–Terry loss ``softplus(z) − y·z`` in float64 of the margins
    ``z = Σ_t s(σ₁_t) − Σ_t s(σ₂_t)`` (float64 sums of the float32 scores) under step scores ``s``: the
    learner's of its final model (:meth:`~rlhf.learning.learner_models.LearnerModel.scores`: the learned
    reward for partial, its A_κ for regret) or the truth's under the learner's preference model (the
    true reward; its A*, at κ = ∞). Each seed on its own rows (nothing summed across seeds: the same
    alone or in a batch); no random draw, nothing changed."""
    cfg, learner = setting.config, setting.learner_model
    table, features = learner.scores(state.reward_model, setting.task, cfg, setting.keys.key.dim())     # [B, F]
    truth = preference_model(learner.preference_model).step_scores(setting.truths, cfg.discount)
    rounds = state.fitted
    first = Trajectories(*(torch.cat([getattr(r[0], x) for r in rounds], -2) for x in ("states", "actions")))
    second = Trajectories(*(torch.cat([getattr(r[1], x) for r in rounds], -2) for x in ("states", "actions")))
    y = torch.cat([r[2].prefer_first for r in rounds], -1).double()                                  # [B, N]
    answered = torch.cat([r[2].answered for r in rounds], -1) if setting.may_skip else None
    f1, f2 = features(first), features(second)                                                       # [B, N, T]

    def loss(z: torch.Tensor, y: torch.Tensor) -> float:
        """Mean of ``softplus(z) − y·z`` (softplus as ``max(z, 0) + log1p(exp(−|z|))``: no threshold)."""
        return float((z.clamp(min=0) + torch.log1p(torch.exp(-z.abs())) - y * z).mean())

    out = []
    for k in range(len(setting.seeds)):
        learned = table[k][f1[k]].double().sum(-1) - table[k][f2[k]].double().sum(-1)               # [N]
        true, labels = true_margins(truth, first[k], second[k]), y[k]
        if answered is not None:
            if not bool(answered[k].any()):
                out.append({"loss_gap": float("nan"), "loss_above_truth": float("nan")})
                continue
            learned, true, labels = learned[answered[k]], true[answered[k]], labels[answered[k]]
        gap = loss(learned, labels) - loss(true, labels)
        out.append({"loss_gap": gap, "loss_above_truth": float(gap > 0)})
    return out


def seed_results(setting: Setting, state: LoopState, history: dict[str, list[torch.Tensor]], rounds: int,
                 config: TrainConfig) -> list[RunResult]:
    """Each seed's result after ``rounds`` rounds (its history so far, metrics now), under ``config``
    (the run's, with the checkpoint's budget)."""
    rows = history_rows(history, rounds)
    accuracy = heldout_accuracy(setting, state.reward_model).tolist()
    tie_params = None                    # the learner's tie parameter (the members' mean in an ensemble)
    if isinstance(state.learner, RankingLearner) and state.learner.ties != "none":
        fitted = state.learner.tie_parameter()
        tie_params = (member_mean(fitted, -1) if config.ensemble > 1 else fitted).tolist()
    against_truth = truth_loss_metrics(setting, state) if compares_fit(setting) and state.fitted else None
    out = []
    for k, seed in enumerate(setting.seeds):
        model = state.reward_model[k]
        metrics = setting.learner_model.metrics(setting.task, setting.truths, model, config)
        metrics["pref_accuracy"] = accuracy[k]
        if tie_params is not None:
            metrics["fitted_tie_param"] = tie_params[k]
        if against_truth is not None:
            metrics |= against_truth[k]
        with torch.inference_mode(False):        # a clone outside inference mode is a normal tensor
            reward = model.reward().clone()
        out.append(RunResult(config, seed, {key: values[k] for key, values in rows.items()}, metrics, reward))
    return out
