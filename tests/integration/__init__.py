"""Tests against real FTPS servers started by the fixtures in ``tests.servers``."""
