"""The asyncmirror-vs-lftp benchmark (see README.md); ``python3 -m benchmarks.run``."""
