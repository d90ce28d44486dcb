variable "name" {
  description = "Name prefix of the replication group, its subnet group, security group and secret."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster: Redis lives in it, never on a public address."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (one per zone) for the cache nodes."
  type        = list(string)
}

variable "client_cidr_blocks" {
  description = "Where the router pods run (the VPC's CIDR with the VPC CNI): the only sources allowed in."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Customer-managed key encrypting the cache at rest, its snapshots and the auth token secret."
  type        = string
}

variable "node_type" {
  description = "Cache node type (router state is small: budgets, buckets, stream slots, samples)."
  type        = string
  default     = "cache.t4g.small"
}

variable "replicas" {
  description = "Cache nodes in the group: a primary and replicas in other zones (>= 2 for failover)."
  type        = number
  default     = 2

  validation {
    condition     = var.replicas >= 2
    error_message = "At least 2 nodes: automatic failover needs a replica."
  }
}

variable "engine_version" {
  description = "Redis engine version of the replication group."
  type        = string
  default     = "7.1"
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots kept (the day's spend survives a node loss)."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags on every resource (the root's default tags arrive through the provider too)."
  type        = map(string)
  default     = {}
}
