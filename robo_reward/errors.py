"""User-facing errors: the CLI prints their message (no traceback) and exits with status 2."""


class RoboRewardError(Exception):
    """Base class for errors caused by user input (files, names, settings), not by a bug."""


class DatasetError(RoboRewardError):
    """A dataset is missing, unreadable or lacks a required field."""


class PolicyError(RoboRewardError):
    """A policy cannot be loaded, or returned an unusable action (wrong shape, NaN, inf)."""


class ConfigError(RoboRewardError):
    """A configuration value or file is invalid."""
