"""The viewer's web app: server-rendered pages over the ledger, no script, nothing fetched.

/ lists the recorded runs (search and filters are query parameters, filtered here), /runs/<id>
shows one run (candidates with their CIs, costs, the decision, the report's plots), and
/diff?a=<id>&b=<id> compares two runs with records.compare. Everything a run or a dataset wrote
reaches the page through Jinja2 autoescaping; only the report's SVG plots are marked safe (their
writer escapes the text inside).

With a key, every request needs it: 'Authorization: Bearer <key>', or ?token=<key> once in the
browser, which answers with a session cookie and a redirect to the same page without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.exceptions import HTTPException

from tunewise.records.ledger import Ledger, LedgerRun, ledger_path
from tunewise.view.pages import Filters, diff_page, run_page, runs_page

# Hosts a loopback-bound viewer answers to: a page elsewhere cannot reach it by pointing its
# own DNS name at 127.0.0.1 (DNS rebinding), because the Host header would name that domain.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_ENV = Environment(
    loader=PackageLoader("tunewise.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _page(template: str, code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(template).render(**context), status_code=code)


def _message(status: int, title: str, text: str) -> HTMLResponse:
    return _page("view_message.html.j2", status, title=title, text=text, status=status)


def _session(api_key: str) -> str:
    """The cookie value: derived from the key, so the key itself is never stored in cookies."""
    return hmac.new(api_key.encode(), b"tunewise view session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def _authorised(request: Request, api_key: str, cookie: str) -> bool:
    if _same(request.headers.get("authorization", ""), f"Bearer {api_key}"):
        return True
    return _same(request.cookies.get(cookie, ""), _session(api_key))


def _cookie_name(request: Request) -> str:
    # Cookies are per host, not per port: two viewers on localhost keep separate sessions.
    return f"tunewise-view-{request.url.port or 80}"


def _login(request: Request, given: str, api_key: str) -> Response:
    if not _same(given, api_key):
        return _unauthorised()
    url = request.url.remove_query_params("token")
    target = url.path + (f"?{url.query}" if url.query else "")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        _cookie_name(request), _session(api_key), httponly=True, samesite="strict", path="/"
    )
    return response


def _unauthorised() -> Response:
    text = (
        "This viewer needs its key: open the page with ?token=KEY once (the browser keeps a "
        "session cookie), or send 'Authorization: Bearer KEY'."
    )
    response = _message(401, "Key needed", text)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@dataclass(frozen=True)
class _Viewer:
    """What the routes read: the ledger, and who may ask."""

    ledger: Path
    api_key: str | None
    allowed_hosts: Collection[str] | None


def create_app(
    ledger: Path | None = None,
    *,
    api_key: str | None = None,
    allowed_hosts: Collection[str] | None = None,
) -> FastAPI:
    """The viewer over the ledger at `ledger` ($TUNEWISE_LEDGER or the home's by default).
    `allowed_hosts`: the Host names it answers to (None: any)."""
    app = FastAPI(title="tunewise view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.viewer = _Viewer(ledger or ledger_path(), api_key, allowed_hosts)
    app.middleware("http")(_guard)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.get("/health")(health)
    app.get("/", response_class=HTMLResponse)(runs)
    app.get("/runs/{run_id}", response_class=HTMLResponse)(run)
    app.get("/runs/{run_id}/report.html", response_class=HTMLResponse)(report)
    app.get("/diff", response_class=HTMLResponse)(diff)
    return app


def _viewer(request: Request) -> _Viewer:
    viewer: _Viewer = request.app.state.viewer
    return viewer


async def _guard(request: Request, call_next: Any) -> Response:
    """Answer only to the allowed hosts, and with a key, only to requests that bring it."""
    viewer = _viewer(request)
    allowed, api_key = viewer.allowed_hosts, viewer.api_key
    response: Response
    if allowed is not None and request.url.hostname not in allowed:
        text = f"This viewer answers only to {', '.join(sorted(allowed))}."
        response = _message(400, "Unknown host", text)
    elif api_key is not None and "token" in request.query_params:
        response = _login(request, request.query_params["token"], api_key)
    elif api_key is not None and not _authorised(request, api_key, _cookie_name(request)):
        response = _unauthorised()
    else:
        response = await call_next(request)
    response.headers.update(HEADERS)
    return response


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _message(exc.status_code, str(exc.detail), "There is no such page; the runs are at /.")


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors()
    )
    return _message(400, "Bad request", problems)


def _runs(request: Request) -> list[LedgerRun]:
    # One connection per request: sqlite stays in its thread.
    with Ledger(_viewer(request).ledger) as opened:
        return opened.runs()


def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


def runs(
    request: Request,
    q: str = "",
    task: str = "",
    candidate: str = "",
    metric: str = "",
    page: int = Query(1, ge=1),
) -> HTMLResponse:
    """The recorded runs, searched and filtered."""
    found = runs_page(_runs(request), Filters(q.strip(), task, candidate, metric, page))
    return _page("view_runs.html.j2", page=found, ledger=str(_viewer(request).ledger))


def run(request: Request, run_id: str) -> HTMLResponse:
    """One run: its candidates, costs, decision and plots."""
    every = _runs(request)
    found = _find(every, run_id)
    if found is None:
        return _not_recorded(run_id, _viewer(request).ledger)
    shown = run_page(found, every)
    plots = [{"key": p.key, "title": p.title, "caption": p.caption, "svg": Markup(p.svg)}
             for p in shown.plots]  # fmt: skip
    return _page("view_run.html.j2", page=shown, plots=plots)


def report(request: Request, run_id: str) -> HTMLResponse:
    """A recorded run's own report.html."""
    found = _find(_runs(request), run_id)
    if found is None:
        return _not_recorded(run_id, _viewer(request).ledger)
    try:  # the report is self-contained; its own CSP travels in its <head>
        return HTMLResponse((Path(found.folder) / "report.html").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        text = f"{found.folder} has no readable report.html; write it with: tunewise report"
        return _message(404, "No report", text)


def diff(request: Request, a: str = "", b: str = "", candidate: str = "") -> HTMLResponse:
    """Two recorded runs compared."""
    if not a or not b:
        text = "Pick two runs to compare: run A (before) and run B (after)."
        return _message(400, "Two runs needed", text)
    every = _runs(request)
    run_a, run_b = _find(every, a), _find(every, b)
    if run_a is None or run_b is None:
        return _not_recorded(a if run_a is None else b, _viewer(request).ledger)
    shown = diff_page(run_a, run_b, candidate)
    status = 200 if shown.problem is None else 404 if shown.folder_missing else 400
    return _page("view_diff.html.j2", status, page=shown)


def _find(runs: list[LedgerRun], run_id: str) -> LedgerRun | None:
    """Only run ids recorded in the ledger: a path never names a folder to read."""
    return next((run for run in runs if run.run_id == run_id), None)


def _not_recorded(run_id: str, ledger: Path) -> HTMLResponse:
    return _message(404, "No such run", f"No run '{run_id}' is recorded in {ledger}.")
