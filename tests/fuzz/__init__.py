"""Property-based fuzzing of every RPC against real servers on loopback (hypothesis)."""
