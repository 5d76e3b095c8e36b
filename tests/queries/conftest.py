"""Query tests: pure functions over twin documents built in the tests; nothing is faked."""
