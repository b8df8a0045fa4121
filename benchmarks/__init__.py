"""Side-by-side performance benchmarks: ``python -m benchmarks`` (benchmarks/README.md)."""
