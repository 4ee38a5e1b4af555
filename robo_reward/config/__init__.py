"""Validated hardware and run configs."""
