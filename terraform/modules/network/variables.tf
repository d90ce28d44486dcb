variable "name" {
  description = "Name prefix of every network resource (e.g. tierroute-prod)."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC; split into one public and one private subnet per zone."
  type        = string
  default     = "10.0.0.0/16"
}

variable "availability_zones" {
  description = "Zones to span (at least two: EKS requires subnets in two zones)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, for dev) instead of one per zone."
  type        = bool
  default     = false
}

variable "cluster_name" {
  description = "EKS cluster name, for the subnet discovery tags of load balancers."
  type        = string
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept in CloudWatch."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key encrypting the flow log group."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
