variable "repositories" {
  description = "ECR repository names to create (the chart's image repositories, e.g. tierroute/router)."
  type        = list(string)
  default     = ["tierroute/router", "tierroute/model"]
}

variable "kms_key_arn" {
  description = "KMS key encrypting the images."
  type        = string
}

variable "keep_images" {
  description = "Most recent images kept per repository; older ones expire."
  type        = number
  default     = 50
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
