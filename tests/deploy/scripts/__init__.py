"""Scripts the deployment tests run with .venv-deploy's Python (their libraries live there)."""
