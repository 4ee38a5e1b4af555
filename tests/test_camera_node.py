"""The camera node over real DDS: OpenCV reads a video file at the configured rate and size, the
file loops (the source "drops" at its end and the node reconnects), and a missing source is
retried without crashing."""

from __future__ import annotations

import random
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

import itertools

from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from ros_nodes.camera_node import CameraNode
from ros_nodes.common import SENSOR_SUB, image_to_array, to_sec


def _video(path, frames=12, size=(80, 60)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for t in range(frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, :, 2] = 200  # red in BGR
        frame[10:20, 5 * t:5 * t + 10] = 255
        writer.write(frame)
    writer.release()
    return path


def _run(params, seconds):
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=random.randint(150, 200))
    received = []
    try:
        camera = CameraNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        probe = rclpy.create_node("probe", context=context)
        probe.create_subscription(Image, "/test/camera", received.append, SENSOR_SUB)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(camera)
        executor.add_node(probe)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.02)
        return camera, received
    finally:
        rclpy.shutdown(context=context)


def test_camera_streams_a_looping_video_file(tmp_path):
    video = _video(tmp_path / "cam.mp4")
    camera, received = _run({"hardware_config": "franka_panda", "camera": "front", "source": str(video),
                             "topic": "/test/camera", "width": 64, "height": 48, "rate_hz": 30.0}, 3.0)
    assert len(received) >= 20  # 12 frames in the file: it looped
    assert camera.reconnects >= 1
    first = image_to_array(received[0])
    assert first.shape == (48, 64, 3) and received[0].encoding == "rgb8"
    assert first[30, 60, 0] > 150 and first[30, 60, 2] < 80  # BGR from OpenCV became RGB
    stamps = [to_sec(m.header.stamp) for m in received]
    assert all(b > a for a, b in itertools.pairwise(stamps))


def test_camera_with_a_missing_source_keeps_retrying(tmp_path):
    camera, received = _run({"hardware_config": "franka_panda", "camera": "front",
                             "source": str(tmp_path / "unplugged.mp4"), "topic": "/test/camera"}, 1.5)
    assert received == [] and camera.capture is None and camera.backoff > 0.5
