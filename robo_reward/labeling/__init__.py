"""Preference labeling of recorded robot videos: sources, SQLite label store, sampling, web app."""
