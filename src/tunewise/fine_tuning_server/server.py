"""Building and running the fine-tuning server: from a model spec and a data folder (the CLI's
way), from any Trainer and Answerer (the tests' way), in the foreground or in a thread."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tunewise.errors import TunewiseError
from tunewise.fine_tuning_server.answering import Answerer
from tunewise.fine_tuning_server.app import create_app
from tunewise.fine_tuning_server.files import FileStorage
from tunewise.fine_tuning_server.jobs import Service, fine_tuned_name
from tunewise.fine_tuning_server.store import Job, Store
from tunewise.fine_tuning_server.training import Trainer
from tunewise.fine_tuning_server.worker import Folders, Worker

MAX_UPLOAD_BYTES = 512 * 2**20
DATABASE = "fine-tuning.sqlite"


@dataclass(frozen=True)
class ServerSettings:
    """How the server is reached and what it accepts."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES


def check_exposure(host: str, api_key: str | None) -> None:
    """A server bound beyond loopback must require a key: it trains and answers for anyone
    who can reach it."""
    if api_key is None and not is_loopback(host):
        raise TunewiseError(
            f"--host {host} exposes the fine-tuning server beyond this machine; require a key "
            "with --api-key-env VAR (the variable holding it), or bind 127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_service(base: str, data: Path, trainer: Trainer, answerer: Answerer,
                  max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Service:  # fmt: skip
    """The service over `data` (created if new): its store, files and worker (not started)."""
    data = data.resolve()
    store = Store(data / DATABASE)
    files = FileStorage(data / "files", store, max_upload_bytes)

    def names(job: Job) -> str:
        return fine_tuned_name(base, job)

    worker = Worker(store, files, trainer, Folders(data), base, names)
    return Service(base, data, store, files, worker, answerer)


def local_service(
    model: str, data: Path, *, dtype: str = "float32",
    training: dict[str, Any] | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> Service:  # fmt: skip
    """The service of a local model spec: tunewise's trainer and answers from that model.
    `training`: FineTuningOptions fields fixed for every job (checkpoint_every, max_length, ...)."""
    from tunewise.fine_tuning_server.answering import LocalAnswerer
    from tunewise.fine_tuning_server.training import LocalTrainer
    from tunewise.models.local import LocalModel
    from tunewise.models.registry import load_backend

    backend = load_backend(model, dtype=dtype)
    if not isinstance(backend, LocalModel):
        raise TunewiseError(
            f"--model {model}: the fine-tuning server trains a local transformers model; "
            f"'{model}' is not one"
        )
    trainer = LocalTrainer(backend, training)
    return build_service(model, data, trainer, LocalAnswerer(backend), max_upload_bytes)


def application(service: Service, settings: ServerSettings) -> FastAPI:
    check_exposure(settings.host, settings.api_key)
    return create_app(service, api_key=settings.api_key, max_upload_bytes=settings.max_upload_bytes)


def run(service: Service, settings: ServerSettings, log_level: str = "warning") -> None:
    """Serve in the foreground until Ctrl-C; the running job stops at a step boundary and
    resumes when the server starts again."""
    import uvicorn

    app = application(service, settings)
    service.worker.claim()  # a clear error before serving, not a failed startup
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level)


@contextmanager
def serve_in_thread(
    service: Service, settings: ServerSettings | None = None, timeout: float = 60.0
) -> Iterator[str]:
    """Serve in a background thread on a free port (settings.port is ignored); yields the
    /v1 base URL once the server answers. Leaving stops the server and its worker (the running
    job stays running in the store, to resume on the next start)."""
    import uvicorn

    settings = settings or ServerSettings()
    app = application(service, settings)
    service.worker.claim()
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise TunewiseError("the fine-tuning server did not start")
        time.sleep(0.02)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    try:
        yield f"http://{shown}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
