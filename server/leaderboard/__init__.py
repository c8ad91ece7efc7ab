"""The leaderboard: periodic snapshots computed from both domains (arena votes, evaluation scores).

It lives in the web layer's package because it composes `arena` and `evaluation`, which must not
import each other in that direction; the maths is all in `ranking`.
"""
