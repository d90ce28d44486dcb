variable "name" {
  description = "Cluster name; also the prefix of its IAM roles, keys and log groups."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version (the chart is validated against 1.30 and 1.33)."
  type        = string
  default     = "1.33"
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the control plane ENIs and the nodes (two zones or more)."
  type        = list(string)
}

variable "endpoint_public_access" {
  description = "Expose the API server endpoint publicly (restricted to public_access_cidrs); the private endpoint is always on."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint when it is enabled (an office or VPN range, never 0.0.0.0/0)."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "The API endpoint must not be open to the whole internet."
  }
}

variable "admin_principal_arns" {
  description = "IAM roles or users given cluster-admin through EKS access entries (e.g. the CI deploy role)."
  type        = list(string)
  default     = []
}

variable "node_groups" {
  description = <<-EOT
    Managed node groups by name. gpu = true selects the NVIDIA AL2023 AMI and turns the
    instance-store NVMe drives into the kubelet's ephemeral storage (model weights copied from
    S3 land there). labels must include tierroute/pool, which the Helm values select on.
  EOT
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

variable "log_retention_days" {
  description = "Days the control-plane logs are kept in CloudWatch."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the control-plane log group."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags); also propagated to the node instances and volumes."
  type        = map(string)
  default     = {}
}
