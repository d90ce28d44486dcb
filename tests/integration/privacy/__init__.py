"""Privacy: no prompt, completion or credential text in the logs and metrics of a real run."""
