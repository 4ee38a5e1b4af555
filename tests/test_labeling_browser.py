"""The labeling page end to end in headless Chromium (Debian's browser, driven by Playwright): a real
`robo-reward label serve` process over mp4 clips and a two-camera LeRobotDataset; decisions made
with the keyboard land in the SQLite database."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_labeling import square_video

CHROMIUM = Path("/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(camera_demos, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        square_video(clips / f"ep{i}.mp4", 4 * i)
    (clips / "broken.mp4").write_bytes(b"\x00" * 64)
    port, db = free_port(), tmp_path / "labels.db"
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "robo_reward.cli", "label", "serve", str(clips), str(camera_demos),
                             "--db", str(db), "--labeler", "tester", "--port", str(port), "--quiet"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    assert proc.poll() is None, (tmp_path / "serve.log").read_text()
    yield url, db
    proc.terminate()
    proc.wait(timeout=20)


def test_label_with_keyboard_in_chromium(server):
    assert CHROMIUM.is_file(), "Debian's chromium is needed (scripts/bootstrap.sh installs it)"
    from playwright.sync_api import sync_playwright

    url, db = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        assert "broken.mp4" in page.inner_text("#messages")  # the corrupt file is named, not fatal

        def progress() -> str:
            return page.inner_text("[data-testid=progress]")

        def decide(key: str, labeled: int) -> None:
            page.keyboard.press(key)
            page.wait_for_function(f"document.querySelector('[data-testid=progress]').textContent"
                                   f".startsWith('{labeled} labeled by you')", timeout=15_000)

        def switch_mode(name: str) -> None:
            page.click(f"button[data-mode={name}]")
            page.wait_for_function(f"item !== null && document.querySelector('[data-testid=progress]').textContent"
                                   f".includes(' in {name} ')", timeout=15_000)

        def views_ready() -> dict:
            page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)",
                                   timeout=30_000)
            return page.evaluate("({videos: document.querySelectorAll('video').length,"
                                 " views: item.episodes.reduce((n, e) => n + e.views.length, 0),"
                                 " offsets: Array.from(document.querySelectorAll('video'))"
                                 "   .map(v => v.currentTime - Number(v.dataset.start))})")

        # pairwise: every view of both clips plays, in step with the others
        state = views_ready()
        assert state["videos"] == state["views"] >= 2
        time.sleep(1.0)
        offsets = views_ready()["offsets"]
        assert max(offsets) - min(offsets) < 0.3, offsets
        assert progress().startswith("0 labeled by you")
        for n, key in enumerate(["ArrowLeft", "ArrowRight", "=", "s", "ArrowLeft"], 1):
            decide(key, n)
        decide("u", 4)  # undo the last one
        # the other modes, switched by their tabs
        switch_mode("score")
        page.wait_for_selector("#rubric:not(.hidden)")
        assert "Complete: every requirement" in page.inner_text("#rubric")
        decide("4", 1)
        switch_mode("success")
        decide("y", 1)
        switch_mode("keyframes")
        views_ready()
        page.keyboard.press("Space")  # pause, scrub to 40 %, mark a keyframe there, save
        box = page.locator("#scrub").bounding_box()  # click the slider's track at 40 %, as a person would
        page.mouse.click(box["x"] + 0.4 * box["width"], box["y"] + box["height"] / 2)
        assert page.evaluate("t / duration") == pytest.approx(0.4, abs=0.05)
        marked_at = page.evaluate("t")
        page.keyboard.press("k")
        assert "s" in page.inner_text("#marks")
        decide("Enter", 1)
        browser.close()

    rows = sqlite3.connect(db).execute("SELECT labeler, mode, value FROM labels ORDER BY id").fetchall()
    assert [(m, json.loads(v)) for _, m, v in rows[:4]] == [("pairwise", "A"), ("pairwise", "B"),
                                                           ("pairwise", "equal"), ("pairwise", "skip")]
    assert [(m, json.loads(v)) for _, m, v in rows[4:6]] == [("score", 4), ("success", True)]
    mode, keyframes = rows[6][1], json.loads(rows[6][2])
    assert mode == "keyframes" and keyframes == [pytest.approx(marked_at, abs=0.001)] and marked_at > 0
    assert {r[0] for r in rows} == {"tester"}
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 7  # 3 clips + 4 episodes
