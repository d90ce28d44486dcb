output "registry" {
  description = "Registry host of the repositories: the chart's imageRegistry."
  value       = split("/", values(aws_ecr_repository.this)[0].repository_url)[0]
}

output "repository_urls" {
  description = "Repository URLs by name."
  value       = { for name, repository in aws_ecr_repository.this : name => repository.repository_url }
}
