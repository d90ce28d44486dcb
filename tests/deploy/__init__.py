"""Deployment checks: the Helm chart, Terraform, Dockerfiles and GitHub workflows, offline."""
