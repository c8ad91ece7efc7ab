"""API docs that work offline, and an OpenAPI document that shows the real error shape.

FastAPI's own /docs and /redoc pull Swagger UI, ReDoc, Google fonts and a favicon from CDNs, so they are
blank on a host without internet. Here the same pages load those files from the `fastapi-offline` wheel,
served by the app under ``/docs-assets``. The document FastAPI generates also claims that a 422 answers
``{"detail": [...]}``; every error of ours is ``{"error": {"code", "message", "field"}}``, so the
schema is corrected once, when it is first built.
"""

from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from server.middleware import UNLIMITED_PATHS

ASSETS = "/docs-assets"
_REF = "#/components/schemas/{model}"
_JSON = "application/json"
# The browser itself keeps the doc pages on this host, whatever a future asset version links to (ReDoc's
# bundle shows a logo from cdn.redoc.ly: blocked, it hides itself). Inline script and style are FastAPI's
# page template; blob: is ReDoc's search worker.
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:"
)


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code.", examples=["not_found"])
    message: str = Field(description="What went wrong, for a person.", examples=["model foo not found"])
    field: str | None = Field(description="The request field at fault, when there is one.", examples=[None])


class ErrorOut(BaseModel):
    """The body of every 4xx and 5xx answer of the service."""

    error: ErrorBody


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from local files and correct the error responses of the OpenAPI document."""
    assets = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    app.add_api_route("/docs", _swagger_page(app), include_in_schema=False)
    app.add_api_route("/redoc", _redoc_page(app), include_in_schema=False)
    app.openapi = _openapi_with_errors(app)  # type: ignore[method-assign]


def _swagger_page(app: FastAPI) -> Callable[[Request], HTMLResponse]:
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _local_only(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # The validator badge would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        ))

    return swagger


def _redoc_page(app: FastAPI) -> Callable[[Request], HTMLResponse]:
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _local_only(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API reference",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js", redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        ))

    return redoc


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _CSP
    return page


def _openapi_with_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI's generator caches the dict it returns in app.openapi_schema, so it is corrected once.
        if app.openapi_schema is None:
            _declare_errors(generate())
        return app.openapi_schema

    return openapi


def _declare_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Give every operation our error shape: 401/403 where a key is needed, 404 on paths with an id,
    422 where FastAPI validates input, 429 where a request budget applies (all but the liveness probe),
    and the 4XX/5XX ranges for the rest (409, 500, 503...)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_error_schemas())
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = {**operation.get("responses", {}), **_errors_of(path, operation)}
            operation["responses"] = dict(sorted(responses.items()))
    return schema


def _error_schemas() -> dict[str, Any]:
    schema = ErrorOut.model_json_schema(ref_template=_REF)
    return {**schema.pop("$defs"), "ErrorOut": schema}


def _errors_of(path: str, operation: dict[str, Any]) -> dict[str, Any]:
    wanted = {"4XX": "Other client error", "5XX": "Server error (500), or the database is down (503)"}
    if "422" in operation.get("responses", {}):
        wanted["422"] = "Invalid request: a parameter or the body fails validation"
    if "{" in path:
        wanted["404"] = "Not found"
    if operation.get("security"):
        wanted |= {"401": "Missing or invalid API key", "403": "The API key lacks the scope this needs"}
    if path not in UNLIMITED_PATHS:
        wanted["429"] = "Too many requests from this client or address: try again after Retry-After seconds"
    return {code: _error_response(text) for code, text in wanted.items()}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": _REF.format(model="ErrorOut")}}}}
