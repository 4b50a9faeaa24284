"""rlhf: preference-based reward learning on finite tabular MDPs.

Two tasks behind one protocol (:class:`GridWorld`, :class:`StringTask`), one
soft value iteration planner, simulated teachers, Bradley–Terry reward
learning, and :func:`train` to tie them together.
"""

import os as _os

# MKL (torch's BLAS on x86-64) outside its conditional-numerical-reproducibility (CNR) mode picks code
# paths by the operands' memory alignment, so a seed's products depended on where its rows sat in a batch:
# train(seed=1) and train_batch([0, 1, 2])[1] differed in the 7th digit (AMD EPYC, MKL_CBWR unset). Any
# MKL_CBWR mode switches CNR on (measured: AUTO alone gave the batch's bits); "AUTO,STRICT" keeps MKL's
# fastest branch (STRICT: alignment independence where a branch offers it), and one seed was as fast.
# MKL reads the mode at its first call, so it holds only if nothing called MKL before ``import rlhf``;
# set unless the caller chose a mode (``import bench`` pins "AVX2,STRICT", the same on every CPU).
# tests/rlhf/test_batch_invariance.py.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from .core.keys import Keys
from .core.mdp import TabularMDP
from .core.planning import (
    expected_returns,
    optimal_advantages,
    policy_return,
    soft_policy,
    soft_value_iteration,
    uniform_policy,
)
from .core.regularized import kl_regularized_policy, policy_kl
from .core.rollout import Trajectories, rollout, step_rewards
from .learning.ensemble import Ensemble
from .learning.learner import LearnerConfig, RewardLearner, bradley_terry_loss
from .learning.learner_models import LEARNER_MODELS, LearnerModel, register_learner_model
from .learning.queries import ENSEMBLE_QUERIES, QUERIES, QueryRule, register_query_rule
from .learning.rankings import RankingLearner
from .learning.regret import RegretRewardLearner
from .learning.rewards import RewardModel, StateLogSoftmaxReward, TableReward
from .metrics import (
    NEAR_OPTIMAL_SCALED_RETURN,
    epic_distance,
    normalized_regret,
    pearson_distance,
    preference_accuracy,
    total_variation,
)
from .metrics import scaled_return_of_reward as scaled_return
from .policies import builtins as _alignment_methods  # noqa: F401  (registers the built-in methods)
from .policies.align import AlignResult, align, align_batch
from .policies.best_of_n import BestOfN, SampledBestOfN, best_of_n, best_of_n_curve, best_of_n_sampled
from .policies.data import PreferenceData
from .policies.methods import (
    ALIGNMENT_METHODS,
    AlignmentMethod,
    PairLoss,
    RankingLoss,
    register_alignment_method,
)
from .policies.overoptimization import (
    PathPoint,
    alignment_path,
    best_of_n_path,
    kl_path,
    npg_path,
    npg_policies,
)
from .policies.proxies import implicit_reward, proxy_reward, proxy_rewards
from .policies.ranking_data import RankingData
from .policies.reference import sft_policy
from .preferences.fit import RankingTeacherFit, TeacherFit, fit_ranking_teacher, fit_teacher
from .preferences.kinds import TeacherKind, register_teacher
from .preferences.labeller import Labeller, Labels, Query
from .preferences.models import PREFERENCE_MODELS, PreferenceModel, register_preference_model
from .preferences.recorded import LabelStore, RecordedRanking, RecordedTeacher
from .preferences.teachers import Teacher
from .preferences.ties import TIE_MODELS
from .tasks import builtins as _builtins  # noqa: F401  (registers the built-in tasks)
from .tasks.ecosystem import from_gymnasium, from_seals
from .tasks.gridworld import GridWorld
from .tasks.presets import PRESETS, preset_task, train_preset
from .tasks.random_gridworld import RandomGridWorld
from .tasks.registry import Axis, Render, TaskSpec, register_task, registered_tasks, task_spec
from .tasks.strings import StringTask
from .tasks.tabular import TabularTask
from .training.config import RANK_COSTS, RANK_LEARNERS, TrainConfig
from .training.loop import plan, session_pairs, train, train_batch, train_checkpoints
from .training.protocol import Task
from .training.results import RoundRecord, RunResult

__version__ = "0.1.0"

# Grouped by theme (tasks and configs, data types, planning, training, rewards, metrics), not sorted.
__all__ = [  # noqa: RUF022
    "GridWorld", "StringTask", "RandomGridWorld", "TabularTask", "from_gymnasium", "from_seals",
    "Task", "TabularMDP", "TrainConfig", "LearnerConfig",
    "Teacher", "Labeller", "Labels", "Trajectories", "RunResult", "RoundRecord",
    "soft_value_iteration", "soft_policy", "uniform_policy", "policy_return", "plan",
    "expected_returns", "optimal_advantages", "Keys", "rollout", "step_rewards", "train", "train_batch",
    "train_checkpoints", "session_pairs", "LabelStore", "RecordedTeacher", "fit_teacher", "TeacherFit",
    "RecordedRanking", "fit_ranking_teacher", "RankingTeacherFit",
    "train_preset", "preset_task", "PRESETS",
    "register_task", "task_spec", "registered_tasks", "TaskSpec", "Axis", "Render",
    "RewardLearner", "bradley_terry_loss", "StateLogSoftmaxReward", "TableReward", "Ensemble",
    "QUERIES", "ENSEMBLE_QUERIES", "PREFERENCE_MODELS", "Query", "RewardModel",
    "QueryRule", "register_query_rule", "PreferenceModel", "register_preference_model",
    "LEARNER_MODELS", "LearnerModel", "register_learner_model", "RegretRewardLearner", "TeacherKind",
    "register_teacher", "RankingLearner", "RANK_LEARNERS", "RANK_COSTS", "TIE_MODELS",
    "total_variation", "epic_distance", "pearson_distance", "normalized_regret", "scaled_return",
    "NEAR_OPTIMAL_SCALED_RETURN",
    "preference_accuracy",
    "kl_regularized_policy", "policy_kl", "PreferenceData", "RankingData", "align", "align_batch", "AlignResult",
    "ALIGNMENT_METHODS", "AlignmentMethod", "PairLoss", "RankingLoss", "register_alignment_method", "sft_policy",
    "best_of_n", "best_of_n_curve", "best_of_n_sampled", "BestOfN", "SampledBestOfN",
    "proxy_reward", "proxy_rewards", "implicit_reward",
    "kl_path", "best_of_n_path", "npg_path", "npg_policies", "alignment_path", "PathPoint",
]
