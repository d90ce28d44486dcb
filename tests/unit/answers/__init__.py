"""Unit tests of the evaluation tooling."""
