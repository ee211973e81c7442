"""Test helpers and tiny assets written for the tests (no downloaded weights or vocabularies)."""
