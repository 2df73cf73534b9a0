"""mmtrain-serve under load, on 127.0.0.1, stopping by itself: a plain asyncio client (aiohttp).

Starts `mmtrain-serve run=<run dir>` (default: trains the default model first into --out/run), writes
--rows news_audio rows as a manifest, then measures:
  1. mmtrain-predict's own throughput on those rows as a file (rows/s; the model's predict, loaded once,
     and the whole command with its start);
  2. throughput with 16 concurrent clients sending 1-row requests (rows/s, and the ratio to 1.);
  3. latency of 1 client sending 1-row requests (p50, p99);
  4. 2,000 requests, half good and half bad (every kind the server refuses): 5xx count, whether the
     server restarted, and its RSS (with its worker processes) after the first 100 requests and at the end.
    python scripts/bench_serve.py --out /tmp/bench_serve [--run <run dir>]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def rss_mb(pid: int) -> float:
    """RSS of the process and its children (the server's worker processes)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            total += int(line.split()[1]) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return total + sum(rss_mb(int(child)) for child in children)


def rows_of(frame: pd.DataFrame, root: Path) -> list[dict]:
    rows = []
    for _, r in frame.iterrows():
        row = {"id": str(r["id"]), "text": r["text"]}
        if isinstance(r["audio"], str):
            row["audio"] = {"b64": base64.b64encode((root / r["audio"]).read_bytes()).decode()}
        rows.append(row)
    return rows


BAD = [
    (b"", "application/json"),
    (b"{nope", "application/json"),
    (b'{"rows": []}', "application/json"),
    (b'{"rows": [{"txt": "typo"}]}', "application/json"),
    (b'{"rows": [{"text": null}]}', "application/json"),
    (b'{"rows": [{"text": 3}]}', "application/json"),
    (b'{"rows": [{"audio": {"b64": "%%%"}}]}', "application/json"),
    (
        json.dumps({"rows": [{"audio": {"b64": base64.b64encode(b"junk" * 50).decode()}}]}).encode(),
        "application/json",
    ),
    (b'{"rows": [{"audio": "/etc/passwd"}]}', "application/json"),
    (b"<rows/>", "application/xml"),
]


async def post(session, url: str, data: bytes, content_type: str) -> int:
    async with session.post(url, data=data, headers={"content-type": content_type}) as response:
        await response.read()
        return response.status


async def load(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    import aiohttp

    latencies, queue = [], list(bodies)

    async def client(session):
        while queue:
            body = queue.pop()
            start = time.perf_counter()
            status = await post(session, url, body, "application/json")
            assert status == 200, status
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return time.perf_counter() - start, latencies


async def mixed(url: str, good: list[bytes], count: int, pid: int) -> tuple[int, float, float]:
    import aiohttp

    server_errors, first = 0, None
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            body, kind = (good[i % len(good)], "application/json") if i % 2 == 0 else BAD[(i // 2) % len(BAD)]
            status = await post(session, url, body, kind)
            server_errors += status >= 500 and status != 504
            if i == 99:
                first = rss_mb(pid)
    return server_errors, first, rss_mb(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--run", type=Path, default=None, help="a trained run dir (default: train the default model)"
    )
    parser.add_argument("--rows", type=int, default=400)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    run_dir = args.run or args.out / "run"
    if not (run_dir / "metrics.json").is_file():
        subprocess.run(
            [str(bin_dir / "mmtrain"), f"hydra.run.dir={run_dir}"], check=True, capture_output=True
        )
    from mmtrain import load_model
    from mmtrain.data.news_audio import write_manifest

    manifest = write_manifest(args.out / "data", num_samples=args.rows)
    frame = pd.read_csv(manifest)[["id", "text", "audio"]]
    model = load_model(run_dir)
    model.predict(frame.head(8), root=manifest.parent)  # warm
    start = time.perf_counter()
    model.predict(frame, root=manifest.parent)
    in_process = len(frame) / (time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run(
        [
            str(bin_dir / "mmtrain-predict"),
            f"run={run_dir}",
            f"data.path={manifest}",
            f"output={args.out}/p.csv",
            "overwrite=true",
            f"hydra.run.dir={args.out}/predict",
        ],
        check=True,
        capture_output=True,
    )
    command = len(frame) / (time.perf_counter() - start)
    print(
        f"mmtrain-predict: {in_process:.0f} rows/s (predict, model loaded), "
        f"{command:.0f} rows/s (the command)"
    )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(bin_dir / "mmtrain-serve"), f"run={run_dir}", f"port={port}", f"hydra.run.dir={args.out}/serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 180
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("mmtrain-serve did not become ready")
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/predict"
        bodies = [json.dumps({"rows": [row]}).encode() for row in rows_of(frame, manifest.parent)]
        wall, _ = asyncio.run(load(url, bodies, 16))
        print(
            f"16 clients, 1-row requests: {len(bodies) / wall:.0f} rows/s = "
            f"{len(bodies) / wall / command:.2f}x the command, {len(bodies) / wall / in_process:.2f}x predict"
        )
        _, latencies = asyncio.run(load(url, bodies[:200], 1))
        p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
        print(f"1 client, 1-row requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        errors, first, last = asyncio.run(mixed(url, bodies, 2000, server.pid))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        died = sum(float(line.split()[-1]) for line in metrics.splitlines() if 'kind="worker_died"' in line)
        print(
            f"2,000 requests (half bad, {len(BAD)} kinds): {errors} server errors, restarted: "
            f"{server.poll() is not None}, worker processes replaced: {died:.0f}, "
            f"RSS {first:.0f} MB after 100 -> {last:.0f} MB "
            f"({last / first:.2f}x)"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
