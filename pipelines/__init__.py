"""The preprocess -> train -> evaluate DAG and the ways to run it (locally, or on ClearML agents)."""
