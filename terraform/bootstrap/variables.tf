variable "region" {
  description = "Region of the Terraform state bucket."
  type        = string
}

variable "owner" {
  description = "Team owning the state (Owner tag)."
  type        = string
}

variable "cost_center" {
  description = "Cost center (CostCenter tag)."
  type        = string
}
