"""The headline figures of the README and docs against the committed benchmark results."""
