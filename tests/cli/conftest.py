"""CLI tests: the real `twinfleet` entry point in child processes, against a real LocalHub."""
