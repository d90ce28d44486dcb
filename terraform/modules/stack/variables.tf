variable "environment" {
  description = "Environment name: part of every resource name and the Environment tag."
  type        = string
}

variable "tags" {
  description = "Tags of every resource (the root's aws provider sets the same as default_tags)."
  type        = map(string)

  validation {
    condition = alltrue([
      for tag in ["Project", "Environment", "Owner", "CostCenter", "ManagedBy"] : contains(keys(var.tags), tag)
    ])
    error_message = "The tags must include Project, Environment, Owner, CostCenter and ManagedBy."
  }
}

variable "region" {
  description = "AWS region (one with H100 capacity: p5 instances)."
  type        = string
}

variable "availability_zones" {
  description = "Zones of the VPC and the node groups (the GPU instance types must be offered in them)."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC."
  type        = string
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway (dev) instead of one per zone (prod)."
  type        = bool
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version."
  type        = string
}

variable "endpoint_public_access" {
  description = "Expose the EKS API endpoint publicly (only to public_access_cidrs)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach a public EKS API endpoint."
  type        = list(string)
  default     = []
}

variable "admin_principal_arns" {
  description = "IAM roles or users with cluster-admin (e.g. the deploy role of CI)."
  type        = list(string)
  default     = []
}

variable "node_groups" {
  description = "Managed node groups: a CPU group and one GPU group per tier pool (see modules/eks)."
  type = map(object({
    instance_types = list(string)
    capacity_type  = string
    gpu            = bool
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gb   = number
    labels         = map(string)
    taints = list(object({
      key    = string
      value  = string
      effect = string
    }))
  }))
}

variable "image_registry" {
  description = "Registry of the tierroute images; empty = the ECR registry this configuration creates."
  type        = string
  default     = ""
}

variable "image_tag" {
  description = "Tag of the router and model images to deploy (a release tag)."
  type        = string
}

variable "tierroute_values" {
  description = "Extra tierroute chart values merged after helm/tierroute/values-<environment>.yaml."
  type        = any
  default     = {}
}

variable "log_retention_days" {
  description = "Days the control-plane and VPC flow logs are kept."
  type        = number
  default     = 365
}

variable "cert_manager" {
  description = "cert-manager and the CA ClusterIssuer of the chart's Certificates: install = false on a cluster running cert-manager, create_issuer = false when issuer_name exists already."
  type = object({
    install       = optional(bool, true)
    create_issuer = optional(bool, true)
    issuer_name   = optional(string, "tierroute-ca")
  })
  default = {}
}

variable "state_store" {
  description = "The router replicas' shared state in ElastiCache for Redis (TLS, encrypted at rest, AUTH token in Secrets Manager): enabled = false leaves it to the chart (values-<environment>.yaml, e.g. the dev Redis)."
  type = object({
    enabled   = optional(bool, false)
    node_type = optional(string, "cache.t4g.small")
    replicas  = optional(number, 2)
  })
  default = {}
}
