"""Integration tests talk to a ClearML server: the stand-in (tests/standin) unless told otherwise."""

from tests.standin.fixtures import *  # noqa: F401,F403 (pytest fixtures)
