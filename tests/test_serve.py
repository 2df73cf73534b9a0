"""mmtrain-serve on loopback: a real uvicorn server around a trained text + audio + tabular multitask
model. Predictions over HTTP equal mmtrain-predict's; concurrent requests each get their own rows back;
every kind of bad input gets its 4xx and message and the next good request still succeeds; file paths
only inside serve.allow_root; /metrics counts what was sent."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import toy_data
from conftest import make_cfg

from mmtrain import load_model
from mmtrain.serving.app import ServeSettings, build_app
from mmtrain.train import run

INPUTS = ["text", "audio", "likes", "country"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    manifest = toy_data.build(root / "data", rows=60)
    cfg = make_cfg(
        root / "run",
        "data=manifest",
        f"data.path={manifest}",
        "data.split_column=split",
        "++data.modalities.text.column=text",
        "++data.modalities.audio.column=audio",
        "++data.modalities.meta.numeric=[likes]",
        "++data.modalities.meta.categorical=[country]",
        "++data.targets.label.column=label",
        "++data.targets.tags.column=tags",
        "++data.targets.tags.type=multilabel",
        "++data.targets.score.column=score",
        "++data.targets.score.type=regression",
        "trainer.max_epochs=2",
    )
    run(cfg)
    return root / "run", manifest


class Server:
    def __init__(self, run_dir, **settings):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = build_app(run_dir, ServeSettings(**settings), "cpu", "test")
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while self.get("/health")[0] != 200:  # ready once loaded and warmed up
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.05)

    def request(self, path: str, data: bytes | None = None, headers: dict | None = None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except urllib.error.URLError:
            return 0, b""

    def get(self, path: str):
        return self.request(path)

    def post(self, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, raw = self.request("/predict", data, {"content-type": content_type})
        return status, json.loads(raw) if raw else None

    def close(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    allowed = tmp_path_factory.mktemp("allowed")
    (allowed / "clip.wav").write_bytes((trained[1].parent / "media" / "0.wav").read_bytes())
    s = Server(trained[0], max_batch_size=8, batch_timeout=20, allow_root=str(allowed), passthrough=["note"])
    s.allowed = allowed
    yield s
    s.close()


def request_rows(manifest: Path, count: int, media: str = "b64") -> list[dict]:
    frame = pd.read_csv(manifest).head(count)
    rows = []
    for _, r in frame.iterrows():
        audio = (manifest.parent / r["audio"]).read_bytes()
        rows.append(
            {
                "id": r["id"],
                "text": r["text"],
                "audio": {"b64": base64.b64encode(audio).decode()} if media == "b64" else r["id"],
                "likes": float(r["likes"]),
                "country": r["country"],
            }
        )
    return rows


def test_predictions_over_http_equal_mmtrain_predict(trained, server):
    run_dir, manifest = trained
    frame = pd.read_csv(manifest).head(12)
    expected = load_model(run_dir).predict(frame[["id", *INPUTS]], root=manifest.parent)
    status, body = server.post({"rows": request_rows(manifest, 12)})
    assert status == 200, body
    got = pd.DataFrame(body["rows"])
    assert list(got.columns)[: len(expected.columns)] == list(expected.columns)
    probs = [c for c in expected.columns if c.startswith("prob_")]
    np.testing.assert_allclose(got[probs].to_numpy(float), expected[probs].to_numpy(float), atol=1e-6)
    np.testing.assert_allclose(got["pred_score"], expected["pred_score"], atol=1e-5)
    assert (got["pred_label"] == expected["pred_label"]).all() and (
        got["pred_tags"] == expected["pred_tags"]
    ).all()
    assert (got["id"] == frame["id"]).all()


def test_media_as_multipart_parts_and_a_missing_modality(trained, server):
    run_dir, manifest = trained
    rows = request_rows(manifest, 3, media="parts")
    rows[2].pop("audio")  # no audio in this row: present_audio 0, as in training
    boundary = uuid.uuid4().hex
    parts = [(None, "rows", json.dumps(rows).encode())]
    parts += [
        (f"{r['id']}.wav", r["id"], (manifest.parent / "media" / f"{i}.wav").read_bytes())
        for i, r in enumerate(rows[:2])
    ]
    body = b""
    for filename, name, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    status, answer = server.post(body, f"multipart/form-data; boundary={boundary}")
    assert status == 200, answer
    assert [r["present_audio"] for r in answer["rows"]] == [1, 1, 0]
    frame = pd.read_csv(manifest).head(3)[["id", *INPUTS]]
    frame.loc[2, "audio"] = None
    expected = load_model(run_dir).predict(frame, root=manifest.parent)
    np.testing.assert_allclose(
        pd.DataFrame(answer["rows"])[["prob_label_neg", "prob_label_pos"]].to_numpy(float),
        expected[["prob_label_neg", "prob_label_pos"]].to_numpy(float),
        atol=1e-6,
    )


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(trained, server):
    _, manifest = trained
    rows = request_rows(manifest, 24)

    def send(i):
        return server.post({"rows": [rows[i]]})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(24)))
    assert all(status == 200 for status, _ in answers)
    assert [body["rows"][0]["id"] for _, body in answers] == [r["id"] for r in rows]
    metrics = server.get("/metrics")[1].decode()
    batched = [line for line in metrics.splitlines() if line.startswith('mmtrain_batch_rows_bucket{le="1"}')]
    count = [line for line in metrics.splitlines() if line.startswith("mmtrain_batch_rows_count")]
    assert int(batched[0].split()[-1]) < int(count[0].split()[-1])  # some batches held more than one row


GOOD = {"rows": [{"text": "a bright tech report", "likes": 1.5, "country": "fr"}]}


@pytest.mark.parametrize(
    "body, content_type, status, message",
    [
        (b"", "application/json", 400, "The body is empty"),
        (b"{not json", "application/json", 400, "not valid JSON"),
        ({"rows": []}, "application/json", 400, "non-empty list"),
        ({"items": [1]}, "application/json", 400, '{"rows": ['),
        (
            {"rows": [{"txt": "typo"}]},
            "application/json",
            400,
            "'txt' is not an input column (did you mean 'text'?)",
        ),
        ({"rows": [{"text": None, "likes": None}]}, "application/json", 400, "row 0 has no input"),
        (
            {"rows": [{"text": 42}]},
            "application/json",
            400,
            "row 0, column 'text': expected text, got a number",
        ),
        (
            {"rows": [{"likes": "many"}]},
            "application/json",
            400,
            "column 'likes': expected a number, got text",
        ),
        (b'{"rows": [{"likes": NaN}]}', "application/json", 400, "not a finite number"),
        (b'{"rows": [{"likes": Infinity}]}', "application/json", 400, "not a finite number"),
        ({"rows": [{"audio": {"b64": "%%%not base64"}}]}, "application/json", 400, "is not base64"),
        (
            {"rows": [{"audio": {"b64": base64.b64encode(b"not a wav at all").decode()}}]},
            "application/json",
            400,
            "cannot be read",
        ),
        ({"rows": [{"audio": "../../etc/passwd"}]}, "application/json", 403, "outside serve.allow_root"),
        ({"rows": [{"audio": "/etc/passwd"}]}, "application/json", 403, "outside serve.allow_root"),
        ({"rows": [GOOD["rows"][0]] * 1001}, "application/json", 413, "serve.max_rows=1000"),
        (b"x" * (33 * 2**20), "application/json", 413, "over serve.max_body_mb"),
        (b"rows=1", "application/xml", 415, "is not read"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_goes_on(server, body, content_type, status, message):
    got, answer = server.post(body, content_type)
    assert got == status and message in answer["message"], answer
    assert server.post(GOOD)[0] == 200


def test_a_missing_value_text_reads_as_missing_as_in_training(trained, server):
    """'?' (the run's data.na_values) and '' are missing cells, as mmtrain-predict reads them in a file;
    any other word in a numeric column stays a 400 (above)."""
    row = {"text": "a bright tech report", "likes": "?", "country": ""}
    status, answer = server.post({"rows": [row]})
    assert status == 200, answer
    expected = load_model(trained[0]).predict(pd.DataFrame([{**row, "audio": None}]))
    np.testing.assert_allclose(
        [answer["rows"][0]["prob_label_neg"], answer["rows"][0]["prob_label_pos"]],
        expected[["prob_label_neg", "prob_label_pos"]].to_numpy(float)[0],
        atol=1e-6,
    )


def test_file_paths_only_inside_the_allowed_root(trained, server):
    status, body = server.post({"rows": [{"text": "steady", "audio": "clip.wav"}]})
    assert status == 200 and body["rows"][0]["present_audio"] == 1
    (server.allowed / "link.wav").symlink_to(trained[1].parent / "media" / "1.wav")  # a symlink out of it
    status, body = server.post({"rows": [{"text": "steady", "audio": "link.wav"}]})
    assert status == 403 and "outside serve.allow_root" in body["message"]


def test_paths_are_refused_without_an_allowed_root(trained, tmp_path):
    from mmtrain.serving.requests import BadRequest, Signature, frame_of

    signature = Signature.of(load_model(trained[0]))  # a server started without serve.allow_root
    row = {"text": "steady", "audio": str(trained[1].parent / "media" / "0.wav")}
    with pytest.raises(BadRequest, match="file paths are refused") as refused:
        frame_of([row], signature, {}, tmp_path, None, 10)
    assert refused.value.status == 403


def test_health_metadata_metrics_and_passthrough(trained, server):
    assert server.get("/health") == (200, b"ok")
    meta = json.loads(server.get("/metadata")[1])
    assert meta["columns"]["likes"] == {"modality": "meta", "type": "tabular", "kind": "numeric"}
    assert meta["tasks"]["label"]["classes"] == ["neg", "neu", "pos"] and len(meta["fingerprint"]) == 64
    before = server.get("/metrics")[1].decode()
    status, body = server.post({"rows": [{"text": "bright", "note": "keep me"}, {"text": "bleak"}]})
    assert status == 200 and body["rows"][0]["note"] == "keep me"
    assert server.post({"rows": [{"texts": "typo"}]})[0] == 400
    after = server.get("/metrics")[1].decode()

    def value(text, name):
        return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)), 0.0)

    assert value(after, "mmtrain_rows_total") == value(before, "mmtrain_rows_total") + 2
    key = 'mmtrain_rows_without_modality_total{modality="audio"}'
    assert value(after, key) == value(before, key) + 2
    key = 'mmtrain_errors_total{kind="unknown_column"}'
    assert value(after, key) == value(before, key) + 1
    key = 'mmtrain_requests_total{status="200"}'
    assert value(after, key) == value(before, key) + 1


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_batch_size": 0}, "serve.max_batch_size=0 must be a whole number of 1 or more"),
        ({"workers": 1.5}, "serve.workers=1.5 must be a whole number"),
        ({"timeout_s": 0}, "serve.timeout_s=0 must be positive"),
        ({"batch_timeout": -1}, r"serve.batch_timeout=-1 \(ms\) must be 0 or more"),
        ({"allow_root": "/no/such/folder"}, "serve.allow_root=/no/such/folder is not a folder"),
    ],
)
def test_bad_serve_settings_are_named(settings, message):
    from mmtrain.core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        ServeSettings(**settings)


def test_a_batch_waits_for_requests_on_their_way_and_only_for_them():
    """A lone request is predicted at once even with an hour-long batch_timeout; a request still being
    read when the worker takes the first one joins that batch."""
    import asyncio

    from mmtrain.serving.batcher import Batcher

    sizes = []

    def predict(frame):
        sizes.append(len(frame))
        return frame

    batcher = Batcher([predict], max_rows=2, timeout_ms=3_600_000)

    async def scenario():
        with batcher.arrival():
            alone = batcher.submit(pd.DataFrame({"x": [0]}))
        assert (await asyncio.wait_for(batcher.answer(alone, 60), 60))["x"].tolist() == [0]
        with batcher.arrival():  # b is on its way while a is queued
            with batcher.arrival():
                a = batcher.submit(pd.DataFrame({"x": [1]}))
            b = batcher.submit(pd.DataFrame({"x": [2]}))
        return (await batcher.answer(a, 60))["x"].tolist(), (await batcher.answer(b, 60))["x"].tolist()

    assert asyncio.run(scenario()) == ([1], [2])
    assert sizes == [1, 2]


def test_a_worker_that_runs_past_the_timeout_is_replaced(trained):
    """serve.workers are processes: one stopped for running past serve.timeout_s fails only its batch
    (WorkerDied, said why) and a fresh one predicts the same (a worker that dies is replaced alike)."""
    from mmtrain.serving.workers import Worker, WorkerDied

    run_dir, manifest = trained
    frame = pd.read_csv(manifest).head(3)[INPUTS]
    frame["audio"] = [str(manifest.parent / a) for a in frame["audio"]]
    worker = Worker(run_dir, "cpu", 1, timeout_s=60)
    try:
        first = worker.predict(frame, checked=False)
        worker.timeout_s = 1e-4
        with pytest.raises(WorkerDied, match=r"ran past serve.timeout_s=0.0001 s and was stopped"):
            worker.predict(frame, checked=False)
        worker.timeout_s = 60
        pd.testing.assert_frame_equal(worker.predict(frame, checked=False), first)
    finally:
        worker.close()
