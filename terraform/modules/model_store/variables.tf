variable "name" {
  description = "Name prefix of the bucket and the role (e.g. tierroute-prod)."
  type        = string
}

variable "bucket_name" {
  description = "Name of the S3 bucket holding one folder per model (e.g. meta-llama/Llama-3.1-8B-Instruct)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the bucket's objects."
  type        = string
}

variable "oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider (from the eks module)."
  type        = string
}

variable "oidc_issuer" {
  description = "OIDC issuer without https:// (from the eks module)."
  type        = string
}

variable "service_account" {
  description = "namespace/name of the Kubernetes service account that reads the weights (the chart's model service account)."
  type        = string
  default     = "tierroute/tierroute-model"
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
