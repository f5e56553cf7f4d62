"""Test-only support code: the local Hub-API server the whole suite talks to."""
