"""Labeling app responsiveness on a source of 500 episodes, in headless Chromium (Debian's browser).

  python bench/bench_labeling.py        # -> bench/results/labeling.json, docs/labeling*.png

Measures, each beside its peer from the same run:
- server start: scanning + hashing 500 mp4 files, cold (empty database) vs warm (hashes cached);
- time to first frame: page load until every view of the first pair has a decoded frame;
- per-decision latency: key press until the next pair is on screen (counter moved), and until its
  first frames are decoded; the peer is the same decision made through the JSON API without a browser;
- the same decisions with 100,000 labels in the database (same labeler, so the "already decided"
  set the sampler checks holds 100k items) vs the empty database.
Screenshots of the page (pairwise over a two-camera LeRobotDataset, and the score mode) go to docs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from robo_reward.data.episodes import write_video
from robo_reward.labeling.store import Label, LabelStore

RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).parent.parent / "docs"
CHROMIUM = "/usr/bin/chromium"


def make_source(root: Path, episodes: int, frames: int, size: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(episodes):
        path = root / f"episode_{i:04d}.mp4"
        if path.exists():
            continue
        base = rng.integers(20, 60, 3)
        clip = []
        for t in range(frames):
            img = np.full((size, size, 3), base, np.uint8)
            x = int((i * 7 + t * 2) % (size - 12))
            img[size // 2 - 6:size // 2 + 6, x:x + 12] = (220, 40, 40)
            clip.append(img)
        write_video(path, clip, fps=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(sources: list[Path], db: Path, extra: list[str] = ()) -> tuple[subprocess.Popen, str, float]:
    """Start `label serve`; returns the process, its URL and the seconds until it accepted connections."""
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "robo_reward.cli", "label", "serve", *map(str, sources), "--db",
                             str(db), "--labeler", "bench", "--port", str(port), "--quiet", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"label serve exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/", time.monotonic() - start
        except OSError:
            time.sleep(0.05)


FIRST_FRAMES = "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2) && " \
               "document.querySelectorAll('video').length > 0"


def browser_decisions(page, url: str, decisions: int) -> dict:
    start = time.monotonic()
    page.goto(url)
    page.wait_for_function(FIRST_FRAMES, timeout=60_000)
    first_frame = time.monotonic() - start
    on_screen, decoded = [], []
    for n in range(decisions):
        before = page.inner_text("[data-testid=progress]")
        t0 = time.monotonic()
        page.keyboard.press("ArrowLeft" if n % 2 else "ArrowRight")
        page.wait_for_function(f"document.querySelector('[data-testid=progress]').textContent !== {json.dumps(before)}",
                               timeout=30_000)
        on_screen.append(time.monotonic() - t0)
        page.wait_for_function(FIRST_FRAMES, timeout=30_000)
        decoded.append(time.monotonic() - t0)
    return {"time_to_first_frame_s": first_frame, "decision_on_screen_ms": summary(on_screen),
            "decision_first_frames_ms": summary(decoded)}


def api_decisions(url: str, decisions: int) -> dict:
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        item = client.get("/api/next", params={"mode": "pairwise"}).json()["item"]
        for n in range(decisions):
            t0 = time.monotonic()
            client.post("/api/label", json={"mode": "pairwise", "items": item["items"], "value": "AB"[n % 2]})
            item = client.get("/api/next", params={"mode": "pairwise"}).json()["item"]
            times.append(time.monotonic() - t0)
    return {"decision_ms": summary(times)}


def summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 1), "p95": round(float(np.percentile(ms, 95)), 1),
            "n": len(ms)}


def fill_labels(db: Path, keys: list[str], count: int) -> float:
    """`count` pairwise labels by the bench labeler (distinct pairs), inserted in one transaction."""
    rows, cols = np.triu_indices(len(keys), 1)
    pick = np.random.default_rng(1).choice(len(rows), count, replace=False)
    i, j = rows[pick], cols[pick]
    now = time.time()
    labels = [Label(uuid.uuid4().hex, "bench", "pairwise", now, (keys[a], keys[b]), "A") for a, b in zip(i, j)]
    store = LabelStore(db)
    start = time.monotonic()
    added = store._insert(labels)
    elapsed = time.monotonic() - start
    store.close()
    assert added == count, (added, count)
    return elapsed


def screenshots(page, dataset: Path, work: Path) -> list[str]:
    proc, url, _ = serve([dataset], work / "shots.db", ["--task", "lift the red cube"])
    out = []
    try:
        for mode, name in (("pairwise", "labeling.png"), ("score", "labeling_score.png")):
            page.goto(url + f"?mode={mode}")
            page.wait_for_function(FIRST_FRAMES, timeout=60_000)
            time.sleep(1.5)
            page.keyboard.press("Space")  # pause mid-episode for a steady picture
            page.screenshot(path=str(DOCS / name))
            out.append(str(Path("docs") / name))
    finally:
        proc.terminate()
        proc.wait()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=500)
    p.add_argument("--frames", type=int, default=60, help="frames per episode (20 fps)")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--labels", type=int, default=100_000)
    p.add_argument("--decisions", type=int, default=40)
    p.add_argument("--screenshot-dataset", default="runs/bench/rewards/lift/train",
                   help="two-camera LeRobotDataset for the docs screenshots (skipped if missing)")
    p.add_argument("--work", default="runs/bench/labeling")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(args.work)
    source = work / "source"
    t0 = time.monotonic()
    make_source(source, args.episodes, args.frames, args.size)
    print(f"source: {args.episodes} episodes ({time.monotonic() - t0:.0f} s to encode)")
    results: dict = {"settings": vars(args)}
    with tempfile.TemporaryDirectory(dir=work) as tmp, sync_playwright() as pw:
        tmp = Path(tmp)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for name, db in (("empty_db", tmp / "empty.db"), ("labels_100k", tmp / "full.db")):
            proc, url, cold = serve([source], db)
            if name == "labels_100k":
                proc.terminate()
                proc.wait()
                store = LabelStore(db)
                keys = [k for (k,) in store.db.execute("SELECT key FROM episodes ORDER BY key")]
                store.close()
                results["insert_100k_s"] = round(fill_labels(db, keys, args.labels), 2)
                proc, url, warm = serve([source], db)
                results["server_start_s"] = {"cold_scan_and_hash": round(cold, 2), "warm_hashes_cached": round(warm, 2),
                                             "ratio_cold_over_warm": round(cold / warm, 2)}
            try:
                results[name] = {**browser_decisions(page, url, args.decisions), **api_decisions(url, args.decisions)}
            finally:
                proc.terminate()
                proc.wait()
            print(name, json.dumps(results[name]))
        e, f = results["empty_db"], results["labels_100k"]
        results["ratios"] = {
            "decision_on_screen_100k_over_empty": round(f["decision_on_screen_ms"]["p50"]
                                                        / e["decision_on_screen_ms"]["p50"], 2),
            "api_decision_100k_over_empty": round(f["decision_ms"]["p50"] / e["decision_ms"]["p50"], 2),
            "browser_over_api_empty": round(e["decision_on_screen_ms"]["p50"] / e["decision_ms"]["p50"], 2),
        }
        if Path(args.screenshot_dataset).exists():
            results["screenshots"] = screenshots(page, Path(args.screenshot_dataset), tmp)
        browser.close()
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {chromium}"
    results["command"] = "python bench/bench_labeling.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "labeling.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results["ratios"], indent=2))


if __name__ == "__main__":
    main()
