"""The robot runtime: what the ROS 2 nodes do, as plain Python (the nodes only convert messages)."""
