"""The labeling web app (FastAPI): one page, a small JSON API, and the episodes' video files.

Safety: binds 127.0.0.1 unless told otherwise and then requires a token; serves only the video files
of the scanned episodes, addressed by number (a path in a URL is never opened); video is sent with
HTTP range requests (seeking without downloading the whole file). An episode whose video cannot be
decoded is taken out of the queue with a message on the page, never a crash.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from robo_reward.errors import DatasetError
from robo_reward.labeling.sampling import ItemSampler
from robo_reward.labeling.sources import Catalog, EpisodeRef, decode_view
from robo_reward.labeling.store import MODES, LabelError, LabelStore

PAGE = Path(__file__).with_name("page.html")
TOKEN_COOKIE = "robo_reward_label_token"
RUBRIC = [  # RoboReward's 1-5 end-of-episode progress rubric
    (1, "No progress: the robot did not make meaningful progress toward the task."),
    (2, "Minimal progress: some relevant motion, but far from completing any key step."),
    (3, "Partial progress: at least one key step done (e.g. object grasped), task not completed."),
    (4, "Nearly complete: most steps done; the final requirement missed or not held."),
    (5, "Complete: every requirement of the instruction met at the end of the episode."),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class LabelingSession:
    catalog: Catalog
    store: LabelStore
    sampler: ItemSampler
    labeler: str
    default_mode: str = "pairwise"
    task: str = ""
    bad: dict[str, str] = field(default_factory=dict)  # episode key -> why it was taken out
    checked: set[str] = field(default_factory=set)  # episodes whose videos decoded
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.episodes = self.catalog.by_key()
        self.files = sorted(self.catalog.files())
        self.file_ids = {f: i for i, f in enumerate(self.files)}

    def take_out(self, key: str, reason: str) -> str:
        episode = self.episodes.get(key)
        name = episode.name if episode else key[:12]
        self.bad[key] = f"{name}: {reason}"
        return self.bad[key]

    def playable(self, key: str) -> bool:
        """Decode each view's first frame once; an episode that fails is taken out with the reason."""
        if key in self.checked:
            return True
        for view in self.episodes[key].views:
            try:
                decode_view(view, max_frames=1)
            except DatasetError as exc:
                self.take_out(key, f"skipped, video cannot be decoded ({exc})")
                return False
        self.checked.add(key)
        return True

    def next_item(self, mode: str) -> tuple[str, ...] | None:
        with self.lock:
            while True:
                item = self.sampler.next(mode, self.store.done(self.labeler, mode), set(self.bad))
                if item is None or all(self.playable(k) for k in item):
                    return item

    def describe(self, mode: str, item: tuple[str, ...]) -> dict[str, Any]:
        episodes = []
        for role, key in zip(MODES[mode][0], item):
            e: EpisodeRef = self.episodes[key]
            episodes.append({"role": role, "key": key, "name": e.name, "task": e.task or self.task,
                             "duration": e.duration,
                             "views": [{"camera": v.camera, "url": f"/media/{self.file_ids[v.file]}", "start": v.start,
                                        "end": v.end} for v in e.views]})
        return {"mode": mode, "items": list(item), "episodes": episodes}

    def progress(self, mode: str) -> dict[str, int]:
        n = len(self.episodes) - len(self.bad)
        size = {"pairwise": n * (n - 1) // 2, "triplet": n * (n - 1) * (n - 2) // 2}.get(mode, n)
        mine = self.store.count(mode, self.labeler)
        return {"labeled_by_you": mine, "labels_in_mode": self.store.count(mode), "total_labels": self.store.count(),
                "remaining": max(size - mine, 0)}


class LabelIn(BaseModel):
    mode: str
    items: list[str]
    value: Any


class ProblemIn(BaseModel):
    key: str
    camera: str = ""
    message: str = ""


LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}


def host_name(header: str) -> str:
    """'127.0.0.1:8765' -> '127.0.0.1', '[::1]:8765' -> '[::1]'."""
    return header[: header.find("]") + 1] if header.startswith("[") else header.split(":", 1)[0]


def create_app(session: LabelingSession, token: str | None = None, host: str = "127.0.0.1"):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    app = FastAPI(title="robo_reward labeling", docs_url=None, redoc_url=None, openapi_url=None)

    # without a token only loopback names are served: another site's page that re-binds its own name
    # to 127.0.0.1 (DNS rebinding) gets nothing; with a token the token is the guard
    allowed_hosts = None if token else LOOPBACK_NAMES | {host}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if allowed_hosts is not None and host_name(request.headers.get("host", "")) not in allowed_hosts:
            return JSONResponse({"detail": "unexpected Host header"}, 400)
        if request.method == "POST":  # label changes only from this page (no cross-site form or fetch)
            origin = request.headers.get("origin")
            site = request.headers.get("sec-fetch-site")
            if (origin is not None and origin.split("://", 1)[-1] != request.headers.get("host")) or \
                    site not in (None, "same-origin", "none") or \
                    not request.headers.get("content-type", "").startswith("application/json"):
                return JSONResponse({"detail": "cross-site or non-JSON request refused"}, 403)
        if token is None:
            return await call_next(request)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or \
            request.headers.get("authorization", "").removeprefix("Bearer ")
        if not secrets.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"detail": "a valid token is required (?token=... or Authorization: Bearer)"}, 401)
        response = await call_next(request)
        if request.query_params.get("token"):  # the page's own requests (videos too) then carry a cookie
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    def page():
        return PAGE.read_text()

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/api/config")
    def config():
        return {"labeler": session.labeler, "modes": list(MODES), "mode": session.default_mode,
                "rubric": RUBRIC, "episodes": len(session.episodes), "strategy": session.sampler.strategy,
                "problems": session.catalog.problems + list(session.bad.values())}

    @app.get("/api/next")
    def next_item(mode: str):
        if mode not in MODES:
            raise HTTPException(400, f"mode {mode!r} unknown; expected one of {list(MODES)}")
        item = session.next_item(mode)
        return {"item": None if item is None else session.describe(mode, item), "progress": session.progress(mode),
                "skipped": list(session.bad.values())}

    @app.post("/api/label")
    def label(body: LabelIn):
        unknown = [k for k in body.items if k not in session.episodes]
        if unknown:
            raise HTTPException(400, f"items: unknown episode(s) {unknown}")
        try:
            stored = session.store.add(session.labeler, body.mode, body.items, body.value)
        except LabelError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"uid": stored.uid, "progress": session.progress(body.mode)}

    @app.post("/api/undo")
    def undo():
        label = session.store.undo(session.labeler)
        if label is None:
            return {"undone": None}
        item = session.describe(label.mode, label.items) if all(k in session.episodes for k in label.items) else None
        return {"undone": {"mode": label.mode, "value": label.value}, "item": item,
                "progress": session.progress(label.mode)}

    @app.post("/api/problem")
    def problem(body: ProblemIn):
        """The browser could not play a view: take the episode out of the queue and say so."""
        if body.key not in session.episodes:
            raise HTTPException(400, f"key: unknown episode {body.key!r}")
        reason = f"skipped, camera {body.camera!r} cannot be played in the browser ({body.message[:200]})"
        return {"message": session.take_out(body.key, reason)}

    @app.get("/media/{file_id}")
    def media(file_id: int):
        if not 0 <= file_id < len(session.files):
            raise HTTPException(404, "no such video")
        path = session.files[file_id]
        if not path.is_file():
            raise HTTPException(404, f"{path.name} is gone from its source")
        return FileResponse(path, media_type="video/mp4" if path.suffix != ".webm" else "video/webm")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):  # one bad request never stops the server
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, 500)

    app.state.session = session
    return app


def page_url(host: str, port: int, token: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")

