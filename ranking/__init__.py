"""Pure numpy ranking maths for Libra Arena: Bradley-Terry with intervals, Elo,
rank intervals, the Libra score and style control. No database, no pandas,
no environment; every random choice takes an explicit numpy Generator."""

from ranking.bradley_terry import SCALE, BTResult, TieModel, fit_bradley_terry
from ranking.counts import A_WINS, B_WINS, TIE, PairCounts, components
from ranking.elo import EloResult, online_elo
from ranking.intervals import Intervals, bootstrap_intervals, fisher_intervals, rating_covariance
from ranking.libra import (
    AxisScores,
    Band,
    ScoreConfig,
    TaskInfo,
    aggregate_scores,
    libra_overall,
    named_stream,
    posterior_task_means,
    rating_to_unit,
)
from ranking.ranks import RankIntervals, rank_intervals
from ranking.snapshot import (
    ArenaBlend,
    ArenaBoard,
    Snapshot,
    SnapshotConfig,
    arena_board,
    blend_arena,
    build_snapshot,
    provisional_intervals,
)
from ranking.style import StyleConfig, StyleCounts, StyleResult, fit_style_controlled

__all__ = [
    "A_WINS",
    "B_WINS",
    "SCALE",
    "TIE",
    "ArenaBlend",
    "ArenaBoard",
    "AxisScores",
    "BTResult",
    "Band",
    "EloResult",
    "Intervals",
    "PairCounts",
    "RankIntervals",
    "ScoreConfig",
    "Snapshot",
    "SnapshotConfig",
    "StyleConfig",
    "StyleCounts",
    "StyleResult",
    "TaskInfo",
    "TieModel",
    "aggregate_scores",
    "arena_board",
    "blend_arena",
    "bootstrap_intervals",
    "build_snapshot",
    "components",
    "fisher_intervals",
    "fit_bradley_terry",
    "fit_style_controlled",
    "libra_overall",
    "named_stream",
    "online_elo",
    "posterior_task_means",
    "provisional_intervals",
    "rank_intervals",
    "rating_covariance",
    "rating_to_unit",
]
