"""Execution: the task service, the runner that claims and runs steps, retries and events."""
