"""/docs and /redoc load every asset from the app itself, and the OpenAPI document tells the truth about
keys and errors (checked against real answers of the service)."""

import re

import httpx
import pytest

from core.db import transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from server.openapi import ErrorOut

ERROR_REF = "#/components/schemas/ErrorOut"
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_doc_pages_load_only_assets_the_app_serves(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    urls = _asset_urls(response.text)
    assert len(urls) >= 2, response.text  # the bundle (and stylesheet) plus the favicon
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert ASSET_TYPES[url[url.rindex("."):]] in asset.headers["content-type"], url
    assert "googleapis" not in response.text and "cdn.jsdelivr" not in response.text
    # and the browser refuses anything a bundle itself would fetch from elsewhere
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_swagger_page_points_at_the_document(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert "/openapi.json" in html and "swagger-ui-bundle.js" in html and "swagger-ui.css" in html


async def _document(client: httpx.AsyncClient) -> dict:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


async def test_document_declares_the_bearer_key_where_a_key_is_needed(client: httpx.AsyncClient) -> None:
    document = await _document(client)
    [(name, scheme)] = document["components"]["securitySchemes"].items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    paths = document["paths"]
    assert paths["/api/v1/models"]["post"]["security"] == [{name: []}]
    assert paths["/api/v1/models/{slug}/retire"]["post"]["security"] == [{name: []}]
    assert "security" not in paths["/api/v1/models"]["get"]  # reading is public


@pytest.mark.parametrize(("path", "method", "status"), [
    ("/api/v1/models", "post", "401"), ("/api/v1/models", "post", "403"), ("/api/v1/models", "post", "422"),
    ("/api/v1/models/{slug}", "get", "404"), ("/api/v1/battles", "post", "422"),
    ("/api/v1/readyz", "get", "5XX"), ("/api/v1/healthz", "get", "4XX"), ("/api/v1/battles/{battle_id}", "get", "429"),
])
async def test_document_declares_our_error_shape(client: httpx.AsyncClient, path: str, method: str,
                                                 status: str) -> None:
    response = (await _document(client))["paths"][path][method]["responses"][status]
    assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}


async def test_every_operation_but_the_liveness_probe_declares_429(client: httpx.AsyncClient) -> None:
    paths = (await _document(client))["paths"]
    limited = {path for path, operations in paths.items() for operation in operations.values()
               if "429" in operation["responses"]}
    assert set(paths) - limited == {"/api/v1/healthz"}


async def test_error_schema_is_error_code_message_field_and_fastapis_is_gone(client: httpx.AsyncClient) -> None:
    document = await _document(client)
    schemas = document["components"]["schemas"]
    assert schemas["ErrorOut"]["required"] == ["error"]
    body = schemas["ErrorOut"]["properties"]["error"]["$ref"].rsplit("/", 1)[1]
    assert schemas[body]["required"] == ["code", "message", "field"]
    assert "HTTPValidationError" not in str(document) and "ValidationError" not in schemas


async def test_the_declared_errors_are_what_the_service_answers(client: httpx.AsyncClient, runtime) -> None:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        submitter = await create_key(session, "submitter", KeyScope.submitter, actor="test")
    answers = {
        401: await client.post("/api/v1/models", json={}),
        403: await client.post("/api/v1/models/any/retire", headers={"Authorization": f"Bearer {submitter.plaintext}"}),
        404: await client.get("/api/v1/models/no-such-model"),
        422: await client.post("/api/v1/battles", json={"prompt": 3}),
    }
    for status, response in answers.items():
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) == {"code", "message", "field"}
        ErrorOut.model_validate(response.json())


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic libra_a_b", "libra_a_b", "Bearer libra_a_b"])
async def test_missing_or_malformed_keys_are_our_401(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.post("/api/v1/admin/leaderboard/recompute", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
