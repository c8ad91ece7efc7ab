"""What the web layer does with loaded engines when a model's life changes."""

import logging

from pydantic import ValidationError

from core.registry.models import Contestant
from server.runtime import Runtime

log = logging.getLogger(__name__)


async def forget_model_engine(runtime: Runtime, model: Contestant) -> None:
    """Close the engine a retired model holds in this process (one mid-call closes when the call ends).

    Other processes (separate workers) keep theirs until their own bound pushes it out.
    """
    try:
        await runtime.backends.evict(model.config)
    except ValidationError:  # a config that never validated never loaded an engine
        return
    log.info("server.engine.forgotten", extra={"model": model.slug})
