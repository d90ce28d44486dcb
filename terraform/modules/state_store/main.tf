# The router replicas' shared state (budgets, rate limits, stream slots, judged samples): an
# ElastiCache for Redis replication group in the cluster's VPC, encrypted in transit (TLS) and
# at rest (the environment's KMS key), with an AUTH token kept in Secrets Manager. The platform
# module hands its endpoint and token to the chart (state.redis.url and a Kubernetes Secret).

resource "random_password" "auth" {
  # ElastiCache AUTH tokens: 16-128 printable characters without @, " or /.
  length           = 64
  special          = true
  override_special = "!&#$^<>-"
}

resource "aws_secretsmanager_secret" "auth" {
  # checkov:skip=CKV2_AWS_57:rotating an ElastiCache AUTH token is a two-step change (ROTATE, then SET) that the router's Secret must follow; done by the runbook in docs/deploy.md, not by a Lambda
  name                    = "${var.name}/redis-auth-token"
  description             = "AUTH token of the tierroute router state Redis (${var.name})."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "auth" {
  secret_id     = aws_secretsmanager_secret.auth.id
  secret_string = random_password.auth.result
}

resource "aws_elasticache_subnet_group" "this" {
  name        = "${var.name}-state"
  description = "Private subnets of the tierroute router state Redis."
  subnet_ids  = var.subnet_ids
  tags        = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-state-redis"
  description = "tierroute router state Redis: TLS port from the cluster's pods only."
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  for_each          = toset(var.client_cidr_blocks)
  security_group_id = aws_security_group.this.id
  description       = "Redis (TLS) from the router pods"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 6379
  to_port           = 6379
  tags              = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = "${var.name}-state"
  description          = "tierroute router state shared by every router replica."
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  num_cache_clusters   = var.replicas
  port                 = 6379

  subnet_group_name  = aws_elasticache_subnet_group.this.name
  security_group_ids = [aws_security_group.this.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true
  auto_minor_version_upgrade = true

  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  auth_token                 = random_password.auth.result

  snapshot_retention_limit = var.snapshot_retention_days
  snapshot_window          = "03:00-04:00"
  maintenance_window       = "sun:05:00-sun:06:00"
  apply_immediately        = false

  tags = var.tags
}
