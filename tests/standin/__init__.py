"""A ClearML-compatible stand-in server for the test suite.

Speaks enough of the ClearML REST API (plus a fileserver and a stub web host)
for the unmodified ``clearml`` SDK and ``clearml-agent`` to run end to end
against 127.0.0.1. Test infrastructure only; see README.md beside this file.
"""

from tests.standin.server import StandinServer

__all__ = ["StandinServer"]
