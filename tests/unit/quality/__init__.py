"""Unit tests of the quality loop's domain core."""
