"""Camera: OpenCV capture (device index, video file or stream URL) -> sensor_msgs/Image (rgb8),
stamped at capture, at the configured rate and size. When the source drops (unplugged camera,
stream hiccup, end of a file) it reports it and reconnects with backoff; a video file loops.

Parameters: camera (a camera name of the hardware config), or source/topic/width/height/rate_hz
directly (these override the config's values).
"""

from __future__ import annotations

import time

import cv2
from sensor_msgs.msg import Image

from robo_reward.errors import ConfigError
from ros_nodes.common import SENSOR_PUB, StackNode, declare, hardware, rgb_to_image


def open_capture(source: str) -> cv2.VideoCapture:
    return cv2.VideoCapture(int(source) if source.isdigit() else source)


class CameraNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "camera"), **kwargs)
        cfg = hardware(self)
        name = str(declare(self, "camera", cfg.cameras[0].name if cfg.cameras else ""))
        cams = {c.name: c for c in cfg.cameras}
        if name not in cams:
            raise ConfigError(f"camera {name!r} is not in {cfg.name}'s cameras {sorted(cams)}")
        cam = cams[name]
        self.name = name
        self.source = str(declare(self, "source", "" if cam.source is None else str(cam.source)))
        self.width = int(declare(self, "width", cam.width))
        self.height = int(declare(self, "height", cam.height))
        rate = float(declare(self, "rate_hz", cam.rate_hz))
        self.pub = self.create_publisher(Image, str(declare(self, "topic", cam.topic)), SENSOR_PUB)
        self.capture: cv2.VideoCapture | None = None
        self.retry_at = 0.0
        self.backoff = 0.5
        self.frames = 0
        self.reconnects = 0
        self.create_timer(1.0 / rate, self.on_tick)

    def connect(self) -> bool:
        if time.monotonic() < self.retry_at:
            return False
        capture = open_capture(self.source)
        if not capture.isOpened():
            capture.release()
            self.get_logger().warning(f"camera {self.name}: cannot open {self.source!r}; retrying in "
                                      f"{self.backoff:.1f} s")
            self.retry_at = time.monotonic() + self.backoff
            self.backoff = min(self.backoff * 2, 5.0)
            return False
        self.capture, self.backoff = capture, 0.5
        self.get_logger().info(f"camera {self.name}: streaming from {self.source!r}")
        return True

    def on_tick(self) -> None:
        if self.capture is None and not self.connect():
            return
        ok, frame = self.capture.read()
        stamp = self.get_clock().now().nanoseconds * 1e-9
        if not ok or frame is None:
            self.capture.release()
            self.capture = None
            self.reconnects += 1
            self.get_logger().warning(f"camera {self.name}: source dropped; reconnecting")
            return
        if frame.shape[1] != self.width or frame.shape[0] != self.height:
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self.pub.publish(rgb_to_image(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), stamp, self.name))
        self.frames += 1


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(CameraNode, args)


if __name__ == "__main__":
    main()
