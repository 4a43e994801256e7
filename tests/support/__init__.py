"""Helpers the tests share: building data, running the flow, reading what it published."""
