"""Tests that need no server: pure functions, argument parsing, local files."""
