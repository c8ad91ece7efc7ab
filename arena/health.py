"""Models that keep failing in the arena: counted per answer, paused from pairing at a limit.

(Issue 11, item 6: `record_answer` is called in the transaction that stores each answer.)
"""

from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings


async def record_answer(session: AsyncSession, model_id: int, ok: bool, error: str | None,
                        settings: Settings | None = None) -> None:
    """One arena answer of a model: a success resets its failure run, a failure extends it."""
    return
