"""Benchmarks of sqs-loops (docs/benchmarks.md): ``python -m bench [--quick] [--json PATH]``.

Never part of the test suite, never part of the Lambda package."""
