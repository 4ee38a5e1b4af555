"""Writing ROS 2 messages to MCAP the way rosbag2 does: CDR bytes from rclpy's serializer, with each
topic's schema the concatenated .msg definitions ("ros2msg"), so `ros2 bag`, Foxglove and
mcap-ros2-support's reader open the file."""

from __future__ import annotations

import re
from pathlib import Path

from mcap.writer import CompressionType, Writer
from rclpy.serialization import serialize_message

from robo_reward.config.hardware import share_dirs

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}
SEPARATOR = "=" * 80


def _msg_file(full_type: str) -> Path:
    pkg, name = full_type.split("/")
    for share in share_dirs():
        path = share / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no definition for {full_type} under {[str(s) for s in share_dirs()]}")


def _field_types(text: str, pkg: str) -> list[str]:
    types = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line.split()[0]:
            continue
        base = re.sub(r"\[.*?\]$", "", line.split()[0])
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVES:
            continue
        types.append(base if "/" in base else f"{pkg}/{base}")
    return types


def message_definition(full_type: str) -> str:
    """The ros2msg schema text of `pkg/Type`: its .msg, then every nested type's once."""
    text = _msg_file(full_type).read_text()
    seen, order, todo = {full_type}, [], _field_types(text, full_type.split("/")[0])
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        dep_text = _msg_file(dep).read_text()
        order.append((dep, dep_text))
        todo += _field_types(dep_text, dep.split("/")[0])
    return text + "".join(f"\n{SEPARATOR}\nMSG: {dep}\n{dep_text}" for dep, dep_text in order)


def type_name(msg) -> str:
    """'sensor_msgs/msg/Image' -> 'sensor_msgs/Image' for an rclpy message instance."""
    module = type(msg).__module__.split(".")[0]
    return f"{module}/{type(msg).__name__}"


class McapLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - stays open while the node records
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="robo_reward")
        self._channels: dict[tuple[str, str], int] = {}
        self._schemas: dict[str, int] = {}
        self.messages = 0

    def write(self, topic: str, msg, log_time_ns: int) -> None:
        name = type_name(msg)
        if name not in self._schemas:
            self._schemas[name] = self._writer.register_schema(name=name, encoding="ros2msg",
                                                               data=message_definition(name).encode())
        key = (topic, name)
        if key not in self._channels:
            self._channels[key] = self._writer.register_channel(topic=topic, message_encoding="cdr",
                                                                schema_id=self._schemas[name])
        self._writer.add_message(channel_id=self._channels[key], log_time=log_time_ns, publish_time=log_time_ns,
                                 data=serialize_message(msg))
        self.messages += 1

    def close(self) -> None:
        if self._file.closed:
            return
        self._writer.finish()
        self._file.close()
