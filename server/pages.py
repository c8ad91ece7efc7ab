"""The web pages at stable addresses, served from the bundles that scripts/build-frontend.sh writes to
frontend/dist (never committed). Every page is one static HTML file; its script reads what it shows from
the API. The exception is `/leaderboard`, which arrives with its ranking already in the table and the
board's data in the page (server/leaderboard/page.py), rendered once per snapshot version. A checkout
whose pages were never built answers with a page that says how to build them."""

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from core.errors import LibraError
from server.leaderboard.cache import etag_matches
from server.leaderboard.page import LeaderboardPage

# address -> the HTML file in frontend/dist; /models/{slug} is the model page (its script reads the slug).
PAGES = {"/": "index.html", "/leaderboard": "leaderboard.html", "/submit": "submit.html", "/admin": "admin.html"}
MODEL_PAGE = "model.html"
NOT_BUILT = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Libra Arena: pages not built</title>"
    "</head><body><h1>The web pages are not built</h1><p>Run <code>scripts/install.sh</code> (or "
    "<code>scripts/build-frontend.sh</code>) in the repository, then reload. The API works meanwhile: "
    "<a href=\"/docs\">/docs</a>.</p></body></html>"
)


def dist_folder() -> Path:
    return Path(str(resources.files("frontend"))) / "dist"


Handler = Callable[[], Awaitable[Response]]


def _file(name: str, media_type: str = "text/html") -> Handler:
    async def serve() -> Response:
        path = dist_folder() / name
        if path.is_file():
            return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(NOT_BUILT, status_code=503) if media_type == "text/html" else Response(status_code=404)
    return serve


def _leaderboard(page: LeaderboardPage, plain: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        runtime = getattr(request.app.state, "runtime", None)
        try:
            board = await runtime.leaderboard.current() if runtime is not None else None
        except LibraError:  # no database and nothing cached: the page's script says so and retries
            board = None
        built = await page.get(board) if board is not None else None
        if built is None:
            return await plain()
        headers = {"Cache-Control": "no-cache", "ETag": built.etag}
        if etag_matches(request.headers.get("if-none-match"), built.etag):
            return Response(status_code=304, headers=headers)
        return HTMLResponse(built.body, headers=headers)
    return serve


def install_pages(app: FastAPI) -> None:
    for address, file in PAGES.items():
        handler = _file(file)
        if address == "/leaderboard":  # one per app: the page rendered for the latest board
            handler = _leaderboard(LeaderboardPage(lambda: dist_folder() / PAGES["/leaderboard"]), handler)
        app.add_api_route(address, handler, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/models/{slug}", _file(MODEL_PAGE), methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/favicon.svg", _file("favicon.svg", "image/svg+xml"), methods=["GET", "HEAD"],
                      include_in_schema=False)
    # Bundles keep fixed names, so browsers revalidate them (ETag) rather than cache them blindly.
    app.mount("/assets", StaticFiles(directory=str(dist_folder() / "assets"), check_dir=False), name="assets")
