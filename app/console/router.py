"""The credit manager's console and the API docs, served by the app with nothing from the internet.

`/` is one HTML page; its script, styles and the vendored chart library are under `/console/`.
`/docs` (Swagger UI) and `/redoc` (ReDoc) load their assets from the `fastapi-offline` package, not a CDN.
The page talks to the public API only, with the key the user signs in with (kept in sessionStorage).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# Everything the console loads comes from this origin; the docs pages need their inline bootstrap script.
CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
               "form-action 'self'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

router = APIRouter(include_in_schema=False)


def _docs_static() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@router.get("/")
def console() -> FileResponse:
    """The console: a single page (sign in with an API key)."""
    return FileResponse(STATIC / "index.html", media_type="text/html",
                        headers={"Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache",
                                 **SECURITY_HEADERS})


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json", title="Coverwatch API",
        swagger_js_url="/console/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/console/docs-assets/swagger-ui.css",
        swagger_favicon_url="/console/docs-assets/favicon.png",
    )
    page.headers.update({"Content-Security-Policy": DOCS_CSP, **SECURITY_HEADERS})
    return page


@router.get("/redoc")
def redoc() -> HTMLResponse:
    page = get_redoc_html(
        openapi_url="/openapi.json", title="Coverwatch API",
        redoc_js_url="/console/docs-assets/redoc.standalone.js",
        redoc_favicon_url="/console/docs-assets/favicon.png", with_google_fonts=False,
    )
    page.headers.update({"Content-Security-Policy": DOCS_CSP, **SECURITY_HEADERS})
    return page


def install(app: FastAPI) -> None:
    """Mount the console, its assets and the offline docs (create the app with docs_url=None, redoc_url=None)."""
    app.include_router(router)
    app.mount("/console/docs-assets", StaticFiles(directory=_docs_static()), name="docs-assets")
    app.mount("/console", StaticFiles(directory=STATIC), name="console")
