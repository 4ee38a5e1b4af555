"""Labeling: sources (mp4 folders, LeRobotDataset, MCAP), the SQLite store, next-item sampling and the
web API (FastAPI's test client over the real app)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from itertools import combinations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from robo_reward.cli import main
from robo_reward.data.episodes import write_video
from robo_reward.labeling.sampling import ItemSampler, load_scores
from robo_reward.labeling.server import LabelingSession, create_app
from robo_reward.labeling.sources import decode_view, scan_sources
from robo_reward.labeling.store import LabelError, LabelStore


def square_video(path, position: int, frames: int = 20, size: int = 32) -> None:
    """A square that moves right from `position` (different content per clip)."""
    out = []
    for t in range(frames):
        img = np.full((size, size, 3), 30, np.uint8)
        x = (position + t) % (size - 8)
        img[12:20, x:x + 8] = (200, 40, 40)
        out.append(img)
    write_video(path, out, fps=10)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for i in range(5):
        square_video(root / f"episode_{i}.mp4", position=3 * i)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # not a video
    return root


def test_mp4_folder_scan_hashes_and_decodes(clip_folder, tmp_path):
    cat = scan_sources([clip_folder], tmp_path / "cache", task="push the block")
    assert len(cat.episodes) == 5
    assert len(cat.problems) == 1 and "broken.mp4" in cat.problems[0] and "cannot open video" in cat.problems[0]
    e = cat.episodes[0]
    assert e.task == "push the block" and e.duration == pytest.approx(2.0, abs=0.15)
    frames = decode_view(e.views[0])
    assert frames.shape == (20, 32, 32, 3)
    # the content hash follows the bytes, not the name: a renamed copy is the same episode
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(clip_folder / "episode_0.mp4", moved / "renamed.mp4")
    again = scan_sources([moved], tmp_path / "cache")
    assert again.episodes[0].key == e.key
    # the same content twice across sources is listed once
    both = scan_sources([clip_folder, moved], tmp_path / "cache")
    assert len(both.episodes) == 5 and any("duplicate" in p for p in both.problems)
    missing = scan_sources([tmp_path / "nope"], tmp_path / "cache")
    assert not missing.episodes and "no such file" in missing.problems[0]


def test_lerobot_dataset_views_and_reexport_hash(camera_demos, tmp_path):
    cat = scan_sources([camera_demos], tmp_path / "cache")
    assert len(cat.episodes) == 4 and not cat.problems
    e = cat.episodes[1]
    assert [v.camera for v in e.views] == ["agentview", "robot0_eye_in_hand"]
    assert e.views[0].start > 0 and e.task == "lift the red cube"  # a view into the chunked video file
    frames = decode_view(e.views[1])
    assert frames.shape[1:] == (32, 32, 3) and abs(len(frames) - 80) <= 1
    # a copy of the dataset at another path ("re-export"): the same keys, so labels still match
    copy = tmp_path / "copy"
    shutil.copytree(camera_demos, copy)
    assert [x.key for x in scan_sources([copy], tmp_path / "cache").episodes] == [x.key for x in cat.episodes]


def test_mcap_recording_split_into_episodes(tmp_path):
    pytest.importorskip("rclpy")
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from ros_nodes.common import rgb_to_image
    from ros_nodes.mcap_log import McapLog

    log = McapLog(tmp_path / "run.mcap")
    t = 1_000.0
    for episode in (1, 2):
        log.write("/robo_reward/episode", String(data=json.dumps({"phase": "running", "episode": episode})),
                  int(t * 1e9))
        for step in range(12):
            t += 0.1
            for cam, shade in (("front", 40), ("wrist", 90)):
                rgb = np.full((24, 32, 3), shade + 10 * episode, np.uint8)
                rgb[:, step:step + 4] = 255
                log.write(f"/robot/{cam}/image_raw", rgb_to_image(rgb, t), int(t * 1e9))
        log.write("/robo_reward/episode", String(data=json.dumps({"phase": "resetting", "episode": episode})),
                  int(t * 1e9))
    # a driver that never sets stamps (all zero): still one playable clip per camera
    log.write("/robo_reward/episode", String(data=json.dumps({"phase": "running", "episode": 3})), int(t * 1e9))
    for step in range(5):
        log.write("/robot/front/image_raw", rgb_to_image(np.full((24, 32, 3), 50 * step, np.uint8), 0.0),
                  int((t + step) * 1e9))
    bad = Image(height=4, width=4, encoding="weird", step=4, data=bytes(16))  # skipped, not fatal
    log.write("/robot/front/image_raw", bad, int(t * 1e9))
    log.close()
    cat = scan_sources([tmp_path / "run.mcap"], tmp_path / "cache")
    assert [e.index for e in cat.episodes] == [1, 2, 3] and not cat.problems
    assert len(decode_view(cat.episodes[2].views[0])) == 5
    again = scan_sources([tmp_path / "run.mcap"], tmp_path / "cache")  # from the cached manifest
    assert [e.key for e in again.episodes] == [e.key for e in cat.episodes]
    assert [v.camera for v in cat.episodes[0].views] == ["front", "wrist"]
    frames = decode_view(cat.episodes[0].views[0])
    assert frames.shape == (12, 24, 32, 3)
    assert cat.episodes[0].duration == pytest.approx(1.2, abs=0.11)
    (tmp_path / "cut.mcap").write_bytes((tmp_path / "run.mcap").read_bytes()[:200])
    cut = scan_sources([tmp_path / "cut.mcap"], tmp_path / "cache")
    assert not cut.episodes and "cannot read MCAP" in cut.problems[0]


def test_store_wal_validation_undo(tmp_path):
    store = LabelStore(tmp_path / "l.db")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.add("ann", "pairwise", ["a", "b"], "A")
    store.add("ann", "score", ["a"], 4)
    for mode, items, value, words in [
        ("pairwise", ["a", "b"], "C", "value 'C' not allowed"),
        ("pairwise", ["a"], "A", "expected episodes ['a', 'b']"),
        ("score", ["a"], True, "value True not allowed"),
        ("score", ["a"], 6, "value 6 not allowed"),
        ("success", ["a"], 1, "value 1 not allowed"),
        ("keyframes", ["a"], [1.0, -2], "list of times"),
        ("triplet", ["a", "a", "b"], "A", "same episode twice"),
        ("ranking", ["a"], 1, "mode 'ranking' unknown"),
    ]:
        with pytest.raises(LabelError, match=words.replace("[", r"\[").replace("]", r"\]")):
            store.add("ann", mode, items, value)
    with pytest.raises(LabelError, match="labeler"):
        store.add(" ", "score", ["a"], 3)
    assert store.add("ann", "keyframes", ["a"], [2.5, 0.5]).value == [0.5, 2.5]
    assert store.done("ann", "pairwise") == {("a", "b")}
    assert store.undo("ann").mode == "keyframes" and store.undo("ann").mode == "score"
    assert store.count() == 1 and store.undo("bob") is None
    other = LabelStore(tmp_path / "l.db")  # a second writer (an import, another server): caches follow it
    other.add("bob", "pairwise", ["c", "d"], "B")
    assert store.count("pairwise") == 2 and store.done("bob", "pairwise") == {("c", "d")}
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(LabelError, match="junk.db: not a usable label database"):
        LabelStore(tmp_path / "junk.db")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_import_dedup_and_agreement(tmp_path, suffix):
    ann, bob = LabelStore(tmp_path / "ann.db"), LabelStore(tmp_path / "bob.db")
    pairs = [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]
    for (x, y), v_ann, v_bob in zip(pairs, ["A", "A", "B", "equal"], ["A", "B", "B", "equal"]):
        ann.add("ann", "pairwise", [x, y], v_ann)
        bob.add("bob", "pairwise", [y, x], {"A": "B", "B": "A"}.get(v_bob, v_bob))  # shown the other way round
    for e, s_ann, s_bob in zip("abcd", [5, 3, 1, 2], [5, 4, 1, 2]):
        ann.add("ann", "score", [e], s_ann)
        bob.add("bob", "score", [e], s_bob)
    out = tmp_path / f"bob{suffix}"
    assert bob.export(out) == 8
    assert ann.import_files([out]) == (8, 0)
    assert ann.import_files([out]) == (0, 8)  # importing the same file again adds nothing
    stats = ann.agreement()
    pw = stats["pairwise"]["ann | bob"]
    assert pw["items"] == 4 and pw["agreement"] == 0.75
    # kappa by hand: observed 0.75; ann A,A,B,equal vs bob A,B,B,equal -> expected (2*1 + 1*2 + 1*1)/16
    assert pw["kappa"] == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))
    sc = stats["score"]["ann | bob"]
    assert sc["agreement"] == 0.75 and sc["mean_abs_diff"] == 0.25
    bad = tmp_path / f"bad{suffix}"
    if suffix == ".jsonl":
        bad.write_text('{"uid": "x", "labeler": "z", "mode": "score", "created": 1, "value": 9, "episodes": '
                       '[{"key": "a"}]}\n')
        with pytest.raises(LabelError, match="record 1: score: value 9 not allowed"):
            ann.import_files([bad])
    else:
        bad.write_bytes(b"PAR1garbage")
        with pytest.raises(LabelError, match="not a label export"):
            ann.import_files([bad])
    assert ann.count() == 16  # nothing from the bad file


def test_sampling_strategies(tmp_path):
    keys = [f"e{i}" for i in range(6)]
    scores = {k: np.array([s]) for k, s in zip(keys, [0.0, 0.1, 0.5, 0.52, 0.9, 2.0])}
    closest = ItemSampler(keys, scores, "closest")
    assert set(closest.next("pairwise", set())) == {"e2", "e3"}
    assert set(closest.next("pairwise", {("e2", "e3")})) == {"e0", "e1"}
    ens = {k: np.array(v) for k, v in zip(keys, [[0, 0], [0, 0], [0, 3], [3, 0], [1, 1], [1, 1.1]])}
    assert set(ItemSampler(keys, ens, "disagreement").next("pairwise", set())) == {"e2", "e3"}
    triplet = closest.next("triplet", set())
    assert triplet[0] == "e5" and len(set(triplet)) == 3  # the best-scored episode is the reference
    decided = {("e5", a, b) for a in keys for b in keys if len({"e5", a, b}) == 3}
    assert closest.next("triplet", decided)[0] == "e4"  # all of e5's pairs decided: the next reference
    rand = ItemSampler(keys)
    done = set()
    for _ in range(15):
        item = rand.next("pairwise", done)
        assert item not in done and item[::-1] not in done
        done.add(item)
    assert rand.next("pairwise", done) is None
    assert rand.next("score", {("e0",), ("e1",)}, exclude={"e2", "e3", "e4", "e5"}) is None
    with pytest.raises(LabelError, match="needs a score for every episode"):
        ItemSampler(keys, {"e0": np.array([1.0])}, "closest")
    with pytest.raises(LabelError, match=">= 2"):
        ItemSampler(keys, scores, "disagreement")
    with pytest.raises(LabelError, match="same number of scores"):
        ItemSampler(keys, {**scores, "e0": np.array([1.0, 2.0])}, "closest")
    bad = tmp_path / "scores.json"
    bad.write_text('{"x.mp4#0": [1, [2, 3]]}')
    with pytest.raises(LabelError, match="expected a finite score"):
        load_scores(bad, [])


@pytest.fixture
def api(clip_folder, tmp_path):
    """The app over a copy of the clips (a test may damage its copy)."""
    folder = shutil.copytree(clip_folder, tmp_path / "clips")
    store = LabelStore(tmp_path / "labels.db")
    cat = scan_sources([folder], tmp_path / "cache", task="push the block")
    store.add_episodes(cat.episodes)
    session = LabelingSession(cat, store, ItemSampler([e.key for e in cat.episodes]), "ann")
    return TestClient(create_app(session), base_url="http://127.0.0.1:8765"), session


def test_api_label_undo_media(api):
    client, session = api
    config = client.get("/api/config").json()
    assert config["episodes"] == 5 and any("broken.mp4" in p for p in config["problems"])
    r = client.get("/api/next", params={"mode": "pairwise"}).json()
    item = r["item"]
    assert r["progress"] == {"labeled_by_you": 0, "labels_in_mode": 0, "total_labels": 0, "remaining": 10}
    assert [e["role"] for e in item["episodes"]] == ["a", "b"] and item["episodes"][0]["task"] == "push the block"
    r = client.post("/api/label", json={"mode": "pairwise", "items": item["items"], "value": "B"})
    assert r.status_code == 200 and r.json()["progress"]["remaining"] == 9
    bad = client.post("/api/label", json={"mode": "pairwise", "items": item["items"], "value": "maybe"})
    assert bad.status_code == 400 and "value 'maybe' not allowed" in bad.json()["detail"]
    unknown = client.post("/api/label", json={"mode": "score", "items": ["nope"], "value": 3})
    assert unknown.status_code == 400 and "unknown episode" in unknown.json()["detail"]
    assert client.get("/api/next", params={"mode": "ranking"}).status_code == 400
    undone = client.post("/api/undo", json={}).json()
    assert undone["undone"] == {"mode": "pairwise", "value": "B"} and undone["item"]["items"] == item["items"]
    assert session.store.count() == 0
    # video: range requests, only the catalog's files, by number
    url = item["episodes"][0]["views"][0]["url"]
    part = client.get(url, headers={"Range": "bytes=10-49"})
    assert part.status_code == 206 and len(part.content) == 40
    assert part.headers["content-range"].startswith("bytes 10-49/")
    # only this page may change labels: no cross-site form posts, no other site's page via DNS rebinding
    assert client.post("/api/undo").status_code == 403  # not JSON (what a cross-site form sends)
    assert client.post("/api/undo", json={}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/api/undo", json={}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/api/config", headers={"Host": "evil.example:8765"}).status_code == 400
    assert client.get("/api/config", headers={"Host": "localhost:8765"}).status_code == 200
    for path in ["/media/99", "/media/-1", "/media/..%2F..%2Fetc%2Fpasswd", "/media/../../etc/passwd",
                 "/../../etc/passwd", "/static/..%2F..%2Fetc%2Fpasswd"]:
        assert client.get(path).status_code in (404, 422), path


def test_api_takes_out_corrupt_videos(api, tmp_path):
    client, session = api
    victim = session.catalog.episodes[0]
    victim.views[0].file.write_bytes(victim.views[0].file.read_bytes()[:300])  # truncated after the scan
    seen = set()
    while (r := client.get("/api/next", params={"mode": "score"}).json())["item"] is not None:
        key = r["item"]["items"][0]
        seen.add(key)
        client.post("/api/label", json={"mode": "score", "items": [key], "value": 3})
    assert len(seen) == 4 and victim.key not in seen
    assert any("cannot be decoded" in s for s in r["skipped"])
    # the browser reports a view it cannot play: that episode leaves the queue too
    msg = client.post("/api/problem", json={"key": session.catalog.episodes[1].key, "camera": "video",
                                            "message": "MEDIA_ERR_DECODE"}).json()["message"]
    assert "cannot be played in the browser" in msg
    assert session.catalog.episodes[1].key not in {k for item in [client.get(
        "/api/next", params={"mode": "pairwise"}).json()["item"]["items"] for _ in range(10)] for k in item}


def test_token_required_when_set(clip_folder, tmp_path):
    store = LabelStore(tmp_path / "labels.db")
    cat = scan_sources([clip_folder], tmp_path / "cache")
    client = TestClient(create_app(LabelingSession(cat, store, ItemSampler([e.key for e in cat.episodes]), "ann"),
                                   token="s3cret", host="0.0.0.0"), base_url="http://robot-pc.lan:8765")
    assert client.get("/api/config").status_code == 401
    assert client.get("/media/0").status_code == 401
    assert client.get("/api/config", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", params={"token": "s3cret"}).status_code == 200  # sets the cookie for the page
    assert client.get("/api/config").status_code == 200 and client.get("/media/0").status_code == 200


def test_cli_refuses_exposed_server_without_token_and_exports(clip_folder, tmp_path, capsys):
    assert main(["label", "serve", str(clip_folder), "--db", str(tmp_path / "l.db"), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    store = LabelStore(tmp_path / "l.db")
    store.add("ann", "success", ["k1"], True)
    store.close()
    out = tmp_path / "labels.parquet"
    assert main(["label", "export", "--db", str(tmp_path / "l.db"), "--out", str(out)]) == 0
    assert main(["label", "export", "--db", str(tmp_path / "l.db"), "--out", str(out)]) == 2  # no silent overwrite
    assert main(["label", "import", str(out), "--db", str(tmp_path / "other.db")]) == 0
    assert sqlite3.connect(tmp_path / "other.db").execute("SELECT value FROM labels").fetchone()[0] == "true"


def colored_clip(path, red: float, seed: int) -> None:
    """A clip whose square is red with weight `red` (else blue): the labeler below prefers redder clips."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(12):
        img = rng.integers(0, 40, (32, 32, 3), dtype=np.uint8)
        x = (seed * 3 + t) % 24
        img[10:22, x:x + 8] = (int(230 * red), 30, int(230 * (1 - red)))
        frames.append(img)
    write_video(path, frames, fps=6)


def test_rewards_trained_from_labels(camera_demos, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    reds = np.linspace(0, 1, 10)
    for i, red in enumerate(reds):
        colored_clip(folder / f"clip{i}.mp4", red, i)
    store = LabelStore(tmp_path / "labels.db")
    cat = scan_sources([folder], tmp_path / "cache", task="show red")
    store.add_episodes(cat.episodes)
    redness = {e.key: reds[int(e.name.split("clip")[1].split(".")[0])] for e in cat.episodes}
    keys = sorted(redness)
    for n, (i, j) in enumerate(combinations(range(10), 2)):
        a, b = (keys[i], keys[j]) if n % 2 else (keys[j], keys[i])
        store.add("ann", "pairwise", [a, b], "A" if redness[a] > redness[b] else "B")
    store.add("ann", "triplet", [keys[0], keys[1], keys[2]], "A")
    store.add("ann", "score", [keys[3]], 2)
    store.add("ann", "score", [keys[4]], 5)
    store.add("ann", "pairwise", [keys[0], keys[5]], "skip")
    store.close()
    db = str(tmp_path / "labels.db")

    out = tmp_path / "bt"
    assert main(["reward", "train", "bradley-terry", "--preferences", db, "--image-size", "32", "--steps", "150",
                 "--out", str(out), "--quiet"]) == 0
    log = json.loads((out / "robo_reward_reward.json").read_text())["config"]["train_log"]
    assert log["heldout_preferences"] == 9 and log["heldout_accuracy"] >= 0.75, log
    from robo_reward.rewards.registry import load_reward_model

    model = load_reward_model(out, "cpu")
    assert model.name == "bradley-terry" and model.cameras == ("video",)

    # the trained model scores every clip (twice: an ensemble of one model, so no disagreement);
    # its scores drive the "closest" strategy
    scores = tmp_path / "scores.json"
    assert main(["label", "scores", str(folder), "--model", str(out), "--model", str(out), "--device", "cpu",
                 "--out", str(scores), "--quiet"]) == 0
    by_key = load_scores(scores, cat.episodes)
    assert len(by_key) == 10 and all(v[0] == v[1] for v in by_key.values())
    ranked = sorted(by_key, key=lambda k: by_key[k][0])
    assert np.corrcoef([redness[k] for k in ranked], np.arange(10))[0, 1] > 0.7  # redder clips score higher
    assert ItemSampler(list(by_key), by_key, "closest").next("pairwise", set()) is not None

    rapl = tmp_path / "rapl"
    assert main(["reward", "train", "rapl", "--preferences", db, "--image-size", "32", "--steps", "1",
                 "--out", str(rapl), "--quiet"]) == 0
    log = json.loads((rapl / "robo_reward_reward.json").read_text())["config"]["train_log"]
    assert log["experts"][0] == keys[4]  # the episode scored 5 is RAPL's expert video
    assert log["train_preferences"] == 37 and 0 < log["heldout_preferences"] <= 9  # 45 pairs + 1 triplet, 20% out
    assert load_reward_model(rapl, "cpu").name == "rapl"

    # scores -> a RoboReward-style set that `reward eval` reads
    scored = tmp_path / "scored"
    assert main(["label", "export", "--db", db, "--format", "roboreward", "--out", str(scored), "--quiet"]) == 0
    from robo_reward.data.augment import load_training_set

    assert sorted(item.score for item in load_training_set(scored)) == [2.0, 5.0]

    # keyframes marked on a dataset episode replace its gripper keyframes for the hop model
    demos = scan_sources([camera_demos], tmp_path / "cache").episodes
    store = LabelStore(db)
    store.add_episodes(demos)
    from robo_reward.data.episodes import load_episodes

    first_success = next(e for e in load_episodes(camera_demos) if e.succeeded)
    index = int(first_success.source.split("#")[1])
    store.add("ann", "keyframes", [demos[index].key], [0.5, 1.0])
    store.close()
    hop = tmp_path / "hop"
    assert main(["reward", "train", "hop", "--dataset", str(camera_demos), "--preferences", db, "--image-size", "32",
                 "--steps", "3", "--out", str(hop), "--quiet"]) == 0
    hop_log = json.loads((hop / "robo_reward_reward.json").read_text())["config"]["train_log"]
    fps = json.loads((camera_demos / "meta" / "info.json").read_text())["fps"]
    assert hop_log["keyframes"][hop_log["demos"].index(first_success.source)] == [round(0.5 * fps), fps]

    assert main(["reward", "train", "rapl", "--preferences", str(tmp_path / "none.db"), "--out",
                 str(tmp_path / "x")]) == 2


def test_rewards_trained_from_labels_record_the_seeds_of_the_episodes_they_learned_from(camera_demos, tmp_path):
    """A reward model trained on labeled simulator episodes has seen their initial states: it records their
    reset seeds, so `eval` can warn when a policy learning from it is scored on those states."""
    from robo_reward.data.lerobot_io import read_episode_seeds
    from robo_reward.rewards.registry import reward_model_demo_seeds

    seeds = read_episode_seeds(camera_demos)
    demos = scan_sources([camera_demos], tmp_path / "cache").episodes
    assert [e.seed for e in demos] == seeds and len(set(seeds)) == 4
    store = LabelStore(tmp_path / "demos.db")
    store.add_episodes(demos)
    for a, b in combinations(demos, 2):  # 6 pairs; one held out leaves every episode in a training pair
        store.add("ann", "pairwise", [a.key, b.key], "A" if a.index < b.index else "B")
    store.close()
    out = tmp_path / "bt_demos"
    assert main(["reward", "train", "bradley-terry", "--preferences", str(tmp_path / "demos.db"), "--image-size", "32",
                 "--steps", "2", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert reward_model_demo_seeds(out) == sorted(seeds)

    # a dataset whose seed list went stale (edited by another tool) is still listed, without seeds
    edited = tmp_path / "edited"
    shutil.copytree(camera_demos, edited)
    spec = json.loads((edited / "robo_reward_env.json").read_text())
    (edited / "robo_reward_env.json").write_text(json.dumps({**spec, "episode_seeds": seeds[:2]}))
    catalog = scan_sources([edited], tmp_path / "cache")
    assert len(catalog.episodes) == 4 and all(e.seed is None for e in catalog.episodes)
    assert any("2 seeds for 4 episodes" in p and "without seeds" in p for p in catalog.problems), catalog.problems
