"""Safety limits, the monitor and the reset manager: pure logic the ROS 2 nodes wrap."""
