"""The HTTP app of ``mmtrain-serve`` (FastAPI): POST /predict, GET /health, /metadata and /metrics.

Every request is read with a size cap, checked (serving/requests.py), preflighted like a file's rows
(media that does not decode is a 400, not a failed batch), and its rows go through the dynamic batcher
to the model's own ``predict``: the columns and values mmtrain-predict writes. A refused request gets
{"error": kind, "message": ...} with its 4xx status; the response JSON never holds NaN or inf.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from mmtrain.core.errors import ConfigError
from mmtrain.inference import load_model
from mmtrain.serving.batcher import Batcher
from mmtrain.serving.metrics import Metrics
from mmtrain.serving.requests import BadRequest, Signature, frame_of, rows_of
from mmtrain.serving.workers import WorkerDied, start_workers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    """The ``serve`` node, checked when made."""

    max_batch_size: int = 32  # rows predicted in one call at most
    batch_timeout: float = 10.0  # ms the first waiting request waits for others to join its batch
    workers: int = 1  # inference processes, each with its own copy of the model
    allow_root: str | None = None  # a folder request paths may point into; None: no file paths at all
    passthrough: tuple = ()  # request keys echoed back unchanged (besides the id column)
    max_body_mb: float = 32.0
    max_rows: int = 1000  # rows in one request at most
    timeout_s: float = 30.0  # a request still unanswered after this gets 504

    def __post_init__(self):
        object.__setattr__(self, "passthrough", tuple(self.passthrough or ()))
        for key in ("max_batch_size", "workers", "max_rows"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"serve.{key}={value} must be a whole number of 1 or more.")
        for key in ("max_body_mb", "timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"serve.{key}={getattr(self, key)} must be positive.")
        if self.batch_timeout < 0:
            raise ConfigError(f"serve.batch_timeout={self.batch_timeout} (ms) must be 0 or more.")
        if self.allow_root is not None and not Path(str(self.allow_root)).expanduser().is_dir():
            raise ConfigError(f"serve.allow_root={self.allow_root} is not a folder on this machine.")


def fingerprint(path: Path) -> str:
    """sha256 of the model's files (a checkpoint, or every file of a gbm/ensemble folder)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_path(model) -> Path:
    return Path(getattr(model, "path", None) or model.folder)


def warm_up_frame(signature: Signature) -> pd.DataFrame:
    """One row: a word in every text column, 0 in numeric ones, nothing else (missing)."""
    cell = {
        c: "warm up" if t == "text" else 0.0 if k == "numeric" else None
        for c, (_, t, k) in signature.columns.items()
    }
    return pd.DataFrame([cell], columns=list(signature.columns))


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-safe dicts (NaN/inf -> null, numpy scalars -> Python)."""

    def safe(v):
        if hasattr(v, "item"):
            v = v.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return [{k: safe(v) for k, v in row.items()} for row in frame.to_dict("records")]


def refused(err: BadRequest) -> JSONResponse:
    return JSONResponse({"error": err.kind, "message": str(err)}, status_code=err.status)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, at most ``max_bytes``; a longer one is read on (not kept) up to 4x the cap so that the
    client, still sending, gets the 413 rather than a broken connection."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= max_bytes:
            chunks.append(chunk)
        elif size > 4 * max_bytes:
            break
    if size > max_bytes:
        raise BadRequest(413, "too_large", f"The body is over serve.max_body_mb ({max_bytes} bytes).")
    return b"".join(chunks)


async def parse(request: Request, body: bytes) -> tuple[object, dict[str, bytes]]:
    """(the JSON body, uploaded parts by name): JSON, or multipart with a ``rows`` field and file parts."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if not body.strip():
        raise BadRequest(400, "empty_body", 'The body is empty: send {"rows": [{column: value, ...}]}.')
    if kind == "multipart/form-data":

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form()
        except Exception as err:  # noqa: BLE001  (any parser failure is the client's malformed body)
            raise BadRequest(400, "bad_multipart", f"The multipart body cannot be read ({err}).") from err
        files = {k: await v.read() for k, v in form.multi_items() if hasattr(v, "read")}
        text = form.get("rows")
        if not isinstance(text, str):
            raise BadRequest(
                400, "no_rows", "A multipart request needs a 'rows' field holding the JSON rows."
            )
        return loads('{"rows": ' + text + "}"), files
    if kind not in ("application/json", "text/plain"):
        raise BadRequest(
            415, "content_type", f"Content-Type {kind} is not read: use application/json or multipart."
        )
    return loads(body), {}


def loads(text) -> object:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(400, "invalid_json", f"The body is not valid JSON ({err}).") from err


def build_app(run, settings: ServeSettings, device="cpu", version: str = "") -> FastAPI:
    """The app serving ``run`` (what load_model takes): this process reads and checks requests with
    the model's signature, ``settings.workers`` processes predict (serving/workers.py)."""
    model = load_model(run)
    signature = Signature.of(model, settings.passthrough)
    modalities = list(model.spec["modalities"])
    metrics = Metrics(modalities)
    ready = threading.Event()
    workers = start_workers(run, device, settings.workers, settings.timeout_s)
    batcher = Batcher(
        [w.predict for w in workers], settings.max_batch_size, settings.batch_timeout, metrics.batch
    )
    metadata = {
        "columns": signature.describe(),
        "id_column": signature.id_column,
        "passthrough": list(signature.passthrough),
        "modalities": {m: s["type"] for m, s in model.spec["modalities"].items()},
        "tasks": {t: {"type": s["type"], "classes": s["classes"]} for t, s in model.tasks.items()},
        "model": str(model_path(model)),
        "fingerprint": fingerprint(model_path(model)),
        "mmtrain_version": version,
    }

    def warm_up() -> None:
        try:
            for worker in workers:
                worker.predict(warm_up_frame(signature), checked=False)
            ready.set()
            log.info("mmtrain-serve: model loaded and warmed up; ready.")
        except Exception:  # noqa: BLE001  (the server stays up, answering /health 503, and says why)
            log.exception("mmtrain-serve: the warm-up prediction failed; /health stays 'not ready'.")

    @asynccontextmanager
    async def lifespan(app):
        yield
        for worker in workers:
            worker.close()

    app = FastAPI(title="mmtrain", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    threading.Thread(target=warm_up, daemon=True, name="mmtrain-serve-warm-up").start()

    @app.get("/health")
    async def health():
        return PlainTextResponse(
            "ok" if ready.is_set() else "not ready", status_code=200 if ready.is_set() else 503
        )

    @app.get("/metadata")
    async def get_metadata():
        return JSONResponse(metadata)

    @app.get("/metrics")
    async def get_metrics():
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.post("/predict")
    async def post_predict(request: Request):
        start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="mmtrain-serve-") as folder:
                with batcher.arrival():
                    body, files = await parse(
                        request, await read_body(request, int(settings.max_body_mb * 2**20))
                    )
                    frame, echoes = frame_of(
                        rows_of(body), signature, files, Path(folder), settings.allow_root, settings.max_rows
                    )
                    bad = await asyncio.to_thread(model.check, frame, Path("/"))
                    if bad.rows:
                        first = "; ".join(
                            f"row {r}: " + ", ".join(f"{c}: {why}" for _, c, why in problems)
                            for r, problems in sorted(bad.rows.items())[:5]
                        )
                        raise BadRequest(400, "bad_cell", f"{len(bad.rows)} row(s) cannot be read ({first}).")
                    job = batcher.submit(frame)
                out = await batcher.answer(job, settings.timeout_s)
        except BadRequest as err:
            metrics.request(err.status, time.perf_counter() - start, err.kind)
            return refused(err)
        except asyncio.TimeoutError:
            metrics.request(504, time.perf_counter() - start, "timeout")
            return JSONResponse(
                {"error": "timeout", "message": f"No answer within serve.timeout_s={settings.timeout_s} s."},
                status_code=504,
            )
        except WorkerDied as err:
            metrics.request(503, time.perf_counter() - start, "worker_died")
            return JSONResponse({"error": "worker_died", "message": f"{err} Send it again."}, status_code=503)
        except ConfigError as err:  # the rows' data, as the model's own checks put it
            metrics.request(400, time.perf_counter() - start, "bad_cell")
            return JSONResponse({"error": "bad_cell", "message": str(err)}, status_code=400)
        except Exception:  # noqa: BLE001  (a bug: logged with its traceback, said as one line)
            log.exception("mmtrain-serve: internal error on /predict")
            metrics.request(500, time.perf_counter() - start, "internal")
            return JSONResponse(
                {"error": "internal", "message": "mmtrain hit an internal error."}, status_code=500
            )
        if "row" in out.columns:  # positions within this request, not within its batch
            out["row"] = range(len(out))
        answer = records(out)
        for row, echo in zip(answer, echoes):
            row.update({k: v for k, v in echo.items() if k not in row})
        present = {m: int(out[f"present_{m}"].sum()) for m in modalities if f"present_{m}" in out}
        metrics.predicted(present, len(out))
        metrics.request(200, time.perf_counter() - start)
        return JSONResponse({"rows": answer})

    return app
