"""Remote-pipeline tests talk to a ClearML server (the stand-in unless told otherwise) and run real agents."""

from tests.standin.fixtures import *  # noqa: F401,F403 (pytest fixtures)
