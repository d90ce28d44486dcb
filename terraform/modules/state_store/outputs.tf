output "url" {
  description = "The router's state.redis.url: TLS (rediss://) to the replication group's primary endpoint."
  value       = "rediss://${aws_elasticache_replication_group.this.primary_endpoint_address}:6379/0"
}

output "auth_token" {
  description = "The AUTH token (also in Secrets Manager), for the chart's Kubernetes Secret."
  value       = random_password.auth.result
  sensitive   = true
}

output "auth_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth.arn
}

output "security_group_id" {
  description = "Security group of the cache nodes."
  value       = aws_security_group.this.id
}
