"""The test suite, a package so tests and benchmarks import ``tests.servers`` by name."""
