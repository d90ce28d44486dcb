# What the root itself needs (provider region, tags); the rest goes to modules/stack whole, typed
# and documented by that module's variables.

variable "environment" {
  description = "Environment name: part of every resource name and the Environment tag."
  type        = string
}

variable "region" {
  description = "AWS region (one with H100 capacity: p5 instances)."
  type        = string
}

variable "owner" {
  description = "Team owning the environment (Owner tag)."
  type        = string
}

variable "cost_center" {
  description = "Cost center billed for the environment (CostCenter tag)."
  type        = string
}

variable "stack" {
  description = "Every other input of modules/stack (network, cluster, node groups, images), see its variables.tf."
  type        = any
}
