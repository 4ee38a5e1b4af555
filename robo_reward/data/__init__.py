"""Dataset I/O: episodes to and from LeRobotDataset files."""
