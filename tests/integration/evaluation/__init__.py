"""Integration tests of the evaluation tooling on the real classifier and the real tiers."""
