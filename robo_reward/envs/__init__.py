"""The Gymnasium robot interface shared by simulated and real robots, and its wrappers."""
