"""Stop-sequence handling for engines that stream text piece by piece."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Cuts streamed text at the first stop sequence without ever emitting part of one.

    Text that could be the start of a stop sequence is held back until the
    next piece shows whether it is.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add a piece; return the text that is now safe to emit."""
        if self.stopped:
            return ""
        text = self._held + piece
        cut = self._first_stop(text)
        if cut is not None:
            self._held = ""
            self.stopped = True
            return text[:cut]
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The held-back text, once generation ended without completing a stop."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _first_stop(self, text: str) -> int | None:
        found = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        return min(found) if found else None

    def _partial_suffix(self, text: str) -> int:
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Truncate finished text at its first stop sequence; say whether one was found."""
    matcher = StopMatcher(stops)
    head = matcher.feed(text)
    return (head, True) if matcher.stopped else (head + matcher.flush(), False)
