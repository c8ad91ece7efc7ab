"""Style cells for the votes cast before they were counted by the vote (issue 11, item 11).

Rebuilds `style_cells` from every counted helpfulness vote (never excluded, or held for review and
approved), each side's style features summed over its turns. The bins and covariates come from
`ranking.style`, the same code the vote path calls, so backfilled and live cells cannot disagree; a
bin computed in SQL would be a second copy of the edges. The table is emptied first, so running the
backfill on a database whose vote path already wrote cells still counts each vote once.

Revision ID: e3a4b5c6d011
Revises: d1f2a3b4c010
"""

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

from ranking.style import StyleConfig, joint_bin, joint_bins, style_difference

revision: str = "e3a4b5c6d011"
down_revision: str | None = "d1f2a3b4c010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VOTES = sa.text("""
SELECT b.model_a_id, b.model_b_id, v.helpfulness,
       coalesce(s.a_length, 0), coalesce(s.a_headers, 0), coalesce(s.a_lists, 0), coalesce(s.a_bold, 0),
       coalesce(s.b_length, 0), coalesce(s.b_headers, 0), coalesce(s.b_lists, 0), coalesce(s.b_bold, 0)
  FROM votes v
  JOIN battles b ON b.id = v.battle_id
  JOIN (SELECT battle_id,
               sum(style_length) FILTER (WHERE side = 'a') AS a_length,
               sum(style_headers) FILTER (WHERE side = 'a') AS a_headers,
               sum(style_lists) FILTER (WHERE side = 'a') AS a_lists,
               sum(style_bold) FILTER (WHERE side = 'a') AS a_bold,
               sum(style_length) FILTER (WHERE side = 'b') AS b_length,
               sum(style_headers) FILTER (WHERE side = 'b') AS b_headers,
               sum(style_lists) FILTER (WHERE side = 'b') AS b_lists,
               sum(style_bold) FILTER (WHERE side = 'b') AS b_bold
          FROM battle_answers GROUP BY battle_id) s ON s.battle_id = b.id
 WHERE v.excluded_reason IS NULL
    OR (v.excluded_reason = 'review'
        AND EXISTS (SELECT 1 FROM vote_reviews r WHERE r.vote_id = v.id AND r.decision = 'approved'))
 ORDER BY v.id
""")

_INSERT = sa.text("""
INSERT INTO style_cells (model_lo_id, model_hi_id, bin, lo_wins, hi_wins, ties, both_bad,
                         z_length, z_headers, z_lists, z_bold)
VALUES (:lo, :hi, :bin, :lo_wins, :hi_wins, :ties, :both_bad, :z_length, :z_headers, :z_lists, :z_bold)
""")

_COLUMNS = ("lo_wins", "hi_wins", "ties", "both_bad")
_Z = ("z_length", "z_headers", "z_lists", "z_bold")


def _cells(rows: list) -> list[dict]:
    """Per (lo, hi, bin): the outcome counts and the covariate sums, low model minus high."""
    a = np.array([r[0] for r in rows], dtype=np.int64)
    b = np.array([r[1] for r in rows], dtype=np.int64)
    verdict = [r[2] for r in rows]
    style = np.array([r[3:11] for r in rows], dtype=float)
    a_is_lo = a < b
    lo, hi = np.where(a_is_lo, a, b), np.where(a_is_lo, b, a)
    style_lo = np.where(a_is_lo[:, None], style[:, :4], style[:, 4:])
    style_hi = np.where(a_is_lo[:, None], style[:, 4:], style[:, :4])
    z = style_difference(style_lo, style_hi)
    config = StyleConfig()
    keys = np.stack([lo, hi, joint_bin(z, config)], axis=1)
    column = np.array([_column(v, lo_first) for v, lo_first in zip(verdict, a_is_lo, strict=True)])
    cells, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.stack([np.bincount(inverse, column == k, len(cells)) for k in range(4)], axis=1)
    sums = np.stack([np.bincount(inverse, col, len(cells)) for col in z.T], axis=1)
    assert cells[:, 2].max() < joint_bins(config)
    return [{"lo": int(c[0]), "hi": int(c[1]), "bin": int(c[2]), **dict(zip(_COLUMNS, map(int, n), strict=True)),
             **dict(zip(_Z, map(float, s), strict=True))}
            for c, n, s in zip(cells, counts, sums, strict=True)]


def _column(verdict: str, a_is_lo: bool) -> int:
    if verdict in ("tie", "both_bad"):
        return 2 if verdict == "tie" else 3
    return 0 if (verdict == "a") == bool(a_is_lo) else 1


def backfill(bind: sa.Connection, chunk: int = 50_000) -> int:
    """Rebuilds the cells; returns how many. Streams the votes in chunks, so memory stays bounded."""
    bind.execute(sa.text("DELETE FROM style_cells"))
    merged: dict[tuple[int, int, int], np.ndarray] = {}
    # Options on this statement only: on the connection they would outlive the migration's own statements.
    streamed = bind.execute(_VOTES, execution_options={"stream_results": True, "yield_per": chunk})
    for rows in streamed.partitions():
        for cell in _cells(list(rows)):
            key = (cell["lo"], cell["hi"], cell["bin"])
            values = np.array([cell[c] for c in _COLUMNS + _Z], dtype=float)
            merged[key] = merged[key] + values if key in merged else values
    records = [{"lo": k[0], "hi": k[1], "bin": k[2], **{c: int(v[i]) for i, c in enumerate(_COLUMNS)},
                **{c: float(v[4 + i]) for i, c in enumerate(_Z)}} for k, v in merged.items()]
    if records:
        bind.execute(_INSERT, records)
    return len(records)


def upgrade() -> None:
    backfill(op.get_bind())


def downgrade() -> None:
    """The cells stay: 0010's downgrade drops the table, and 0010's vote path reads it as it is."""
