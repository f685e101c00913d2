"""The HTTP side of `tunewise fine-tuning-server`: OpenAI's files, fine-tuning jobs, models and
chat-completions routes over a Service. Errors, the bearer key and request sizes go through
the same plumbing as `tunewise serve` (inference/chat_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from tunewise.errors import TunewiseError
from tunewise.fine_tuning_server.files import file_object
from tunewise.fine_tuning_server.jobs import Service, parse_job_request
from tunewise.fine_tuning_server.store import checkpoint_object, page
from tunewise.inference.chat_api import (
    ApiError,
    answer_errors_as_openai,
    check_single_answer,
    completion_body,
    key_and_size_guard,
    read_chat_request,
)

MAX_REQUEST_BYTES = 1_000_000  # every request but an upload
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the purpose field around an upload
Limit = Query(default=20, ge=1, le=100)


def create_app(service: Service, *, api_key: str | None, max_upload_bytes: int) -> FastAPI:
    """The application; its lifespan starts and stops the service's worker."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.worker.stop)

    app = FastAPI(
        title="tunewise fine-tuning server", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.service = service
    app.state.max_upload_bytes = max_upload_bytes
    answer_errors_as_openai(app)
    app.middleware("http")(key_and_size_guard(api_key, _limit(max_upload_bytes)))
    app.get("/health")(health)
    app.get("/v1/models")(models)
    app.get("/v1/models/{model_id:path}")(model)
    app.post("/v1/chat/completions")(chat)
    app.post("/v1/files")(upload)
    app.get("/v1/files")(list_files)
    app.get("/v1/files/{file_id}")(retrieve_file)
    app.get("/v1/files/{file_id}/content")(file_content)
    app.delete("/v1/files/{file_id}")(delete_file)
    app.post("/v1/fine_tuning/jobs")(create_job)
    app.get("/v1/fine_tuning/jobs")(list_jobs)
    app.get("/v1/fine_tuning/jobs/{job_id}")(retrieve_job)
    app.post("/v1/fine_tuning/jobs/{job_id}/cancel")(cancel_job)
    app.get("/v1/fine_tuning/jobs/{job_id}/events")(job_events)
    app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")(job_checkpoints)
    return app


def _limit(max_upload_bytes: int) -> Any:
    def limit(request: Request) -> int:
        if request.method == "POST" and request.url.path == "/v1/files":
            return max_upload_bytes + FORM_OVERHEAD
        return MAX_REQUEST_BYTES

    return limit


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def health(request: Request) -> dict[str, Any]:
    service = _service(request)
    return {"status": "ok", "model": service.base, "training": service.worker.current}


# ---- models and chat ---------------------------------------------------------------------------


def models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": _service(request).models()}


def model(request: Request, model_id: str) -> dict[str, Any]:
    service = _service(request)
    service.adapter(model_id)  # a 404 for a model it does not have
    cards = {card["id"]: card for card in service.models()}
    return cards.get(model_id, {"id": model_id, "object": "model", "created": 0,
                                "owned_by": "tunewise"})  # fmt: skip


async def chat(request: Request) -> JSONResponse:
    """A chat completion of the base model or a fine-tuned one (its adapter loaded on demand)."""
    service = _service(request)
    parsed = await read_chat_request(request, MAX_REQUEST_BYTES)
    check_single_answer(parsed)
    adapter = await run_in_threadpool(service.adapter, parsed.model)
    try:
        answer = await run_in_threadpool(service.answerer.answer, parsed.model, adapter, parsed)
    except TunewiseError as exc:
        raise ApiError(502, str(exc), "model_error") from None
    body = completion_body(
        parsed.model, answer.choice(), answer.prompt_tokens, answer.completion_tokens
    )
    return JSONResponse(body)


# ---- files -------------------------------------------------------------------------------------


async def upload(request: Request) -> dict[str, Any]:
    """multipart/form-data with `file` and `purpose` (fine-tune); a declared length is needed,
    so the size limit holds before anything is read."""
    if request.headers.get("content-length") is None:
        raise ApiError(411, "uploads need a Content-Length header", "length_required")
    service = _service(request)
    async with request.form(max_files=1, max_fields=8) as form:
        upload_file, purpose = form.get("file"), form.get("purpose")
        if upload_file is None or isinstance(upload_file, str):
            raise ApiError(400, "the form needs a 'file' part", "invalid_request", "file")
        if not isinstance(purpose, str):
            raise ApiError(400, "the form needs a 'purpose' field", "invalid_request", "purpose")
        name = upload_file.filename or "upload.jsonl"
        return await run_in_threadpool(service.files.upload, upload_file.file, name, purpose)


def list_files(
    request: Request, purpose: str | None = None, after: str | None = None, limit: int = 10_000
) -> dict[str, Any]:
    found = [file_object(r) for r in _service(request).store.files(purpose)]
    return page(found, after, limit)


def retrieve_file(request: Request, file_id: str) -> dict[str, Any]:
    return file_object(_service(request).files.record(file_id))


def file_content(request: Request, file_id: str) -> FileResponse:
    files = _service(request).files
    files.record(file_id)
    return FileResponse(files.path(file_id), media_type="application/octet-stream")


def delete_file(request: Request, file_id: str) -> dict[str, Any]:
    service = _service(request)
    if users := service.uses(file_id):
        raise ApiError(
            400, f"file {file_id} is used by unfinished job(s) {', '.join(users)}",
            "file_in_use", "file_id",
        )  # fmt: skip
    return service.files.delete(file_id)


# ---- fine-tuning jobs --------------------------------------------------------------------------


async def create_job(request: Request) -> dict[str, Any]:
    body = await request.body()
    parsed = parse_job_request(body)
    job = await run_in_threadpool(_service(request).create, parsed)
    return job.api()


def list_jobs(request: Request, after: str | None = None, limit: int = Limit) -> dict[str, Any]:
    """Newest first; `metadata[KEY]=VALUE` query parameters keep the jobs whose metadata
    has those entries."""
    wanted = {
        name[len("metadata[") : -1]: value
        for name, value in request.query_params.items()
        if name.startswith("metadata[") and name.endswith("]")
    }
    jobs = [
        job.api()
        for job in _service(request).store.jobs()
        if all((job.metadata or {}).get(k) == v for k, v in wanted.items())
    ]
    return page(jobs, after, limit)


def retrieve_job(request: Request, job_id: str) -> dict[str, Any]:
    return _service(request).job(job_id).api()


def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    return _service(request).cancel(job_id).api()


def job_events(
    request: Request, job_id: str, after: str | None = None, limit: int = Limit
) -> dict[str, Any]:
    service = _service(request)
    service.job(job_id)
    return page(service.store.events(job_id), after, limit)


def job_checkpoints(
    request: Request, job_id: str, after: str | None = None, limit: int = Limit
) -> dict[str, Any]:
    service = _service(request)
    service.job(job_id)
    found = [checkpoint_object(row) for row in service.store.checkpoints(job_id)]
    return page(found, after, limit)
