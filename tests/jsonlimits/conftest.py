"""JSON boundary tests: pure functions over generated and hand-made documents; nothing is faked."""
