"""The route label of a request: the full path template that answered it (``/api/v1/battles/{battle_id}``),
never the path itself, so a metric has one series per route however many ids are asked for.

FastAPI sets ``scope["route"]`` to the route that answered, but since it includes routers lazily that
route's path lacks the router's prefix (``/battles/{battle_id}``). The full templates come from what
FastAPI publishes: the OpenAPI paths, plus the app's own top-level routes and mounts (pages, /metrics,
static files). A request answered before routing (a 413, a CORS preflight) is matched against them;
a path no route knows is ``unmatched``.
"""

import re
from collections import defaultdict
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.routing import compile_path
from starlette.types import Scope

UNMATCHED = "unmatched"


@dataclass(frozen=True)
class Template:
    label: str
    pattern: re.Pattern[str]


class RouteLabels:
    """Built on first use (every route exists by then); one per app."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._templates: list[Template] | None = None
        self._by_suffix: dict[str, list[Template]] = {}

    def label(self, scope: Scope) -> str:
        templates = self._templates if self._templates is not None else self._build()
        path = _route_path(scope)
        answered = getattr(scope.get("route"), "path", None)
        if isinstance(answered, str):
            own = [t for t in self._by_suffix.get(answered, ()) if t.pattern.fullmatch(path)]
            if own:
                return own[0].label
        for template in templates:
            if template.pattern.fullmatch(path):
                return template.label
        return answered if isinstance(answered, str) else UNMATCHED

    def _build(self) -> list[Template]:
        try:
            paths = list(self._app.openapi().get("paths", {}))
        except Exception:  # noqa: BLE001 - a broken schema must not break every answer; labels get coarser
            paths = []
        templates = [Template(path, compile_path(path)[0]) for path in paths]
        for route in self._app.router.routes:
            path, pattern = getattr(route, "path", None), getattr(route, "path_regex", None)
            if isinstance(path, str) and isinstance(pattern, re.Pattern) and path not in {t.label for t in templates}:
                templates.append(Template(path or "/", pattern))
        # Fixed segments before parameters, as a router prefers /models/mine to /models/{slug}.
        templates.sort(key=lambda t: (t.label.count("{"), -len(t.label)))
        by_suffix: dict[str, list[Template]] = defaultdict(list)
        for template in templates:
            for start in [i for i, char in enumerate(template.label) if char == "/"]:
                by_suffix[template.label[start:]].append(template)
        self._by_suffix, self._templates = dict(by_suffix), templates
        return templates


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path
