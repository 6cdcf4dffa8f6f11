"""Errors a user can cause. The CLI prints their message on one line, without a traceback."""

from __future__ import annotations


class GanforgeError(Exception):
    """A problem the user can fix: the message names what is wrong and how to fix it."""


class DataError(GanforgeError):
    """A data source is missing, empty, unreadable or unsuitable."""


class ConfigError(GanforgeError):
    """A configuration value is invalid or incompatible (e.g. a resumed run's config differs)."""


class MissingDependencyError(GanforgeError):
    """An optional dependency is needed: the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency lazily, or raise an error naming the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this feature needs the optional package '{module}': pip install 'ganforge[{extra}]'"
        ) from exc


class UnseenWordsWarning(UserWarning):
    """A prompt holds words a text-conditioned model never saw in training (named in the message). Training
    previews do not raise it: the vocabulary is still growing then."""
