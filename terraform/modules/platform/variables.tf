variable "environment" {
  description = "Environment name (dev, prod): picks helm/tierroute/values-<environment>.yaml."
  type        = string
}

variable "chart_repositories" {
  description = "Helm repositories of the third-party charts."
  type        = map(string)
  default = {
    kube_prometheus_stack = "https://prometheus-community.github.io/helm-charts"
    gpu_operator          = "https://helm.ngc.nvidia.com/nvidia"
    cert_manager          = "https://charts.jetstack.io"
  }
}

variable "kube_prometheus_stack_version" {
  description = "Version of the kube-prometheus-stack chart (Prometheus Operator, Prometheus, Alertmanager, Grafana)."
  type        = string
  default     = "79.0.0"
}

variable "gpu_operator_version" {
  description = "Version of the NVIDIA GPU Operator chart (device plugin, GPU feature discovery, DCGM exporter)."
  type        = string
  default     = "v25.3.4"
}

variable "prometheus_retention" {
  description = "How long Prometheus keeps samples."
  type        = string
  default     = "15d"
}

variable "prometheus_storage_size" {
  description = "Size of Prometheus' persistent volume (gp3, encrypted)."
  type        = string
  default     = "100Gi"
}

variable "tierroute_chart" {
  description = "The tierroute chart: a local path (default: this repository's helm/tierroute) or an OCI reference from the release workflow."
  type        = string
  default     = ""
}

variable "tierroute_chart_version" {
  description = "Chart version when tierroute_chart is an OCI reference; null for a local path."
  type        = string
  default     = null
}

variable "tierroute_namespace" {
  description = "Namespace of the tierroute release."
  type        = string
  default     = "tierroute"
}

variable "image_registry" {
  description = "Registry of the tierroute images (the ECR registry from the registry module, or the release workflow's registry)."
  type        = string
}

variable "image_tag" {
  description = "Tag of both tierroute images (a release tag pushed by the release workflow)."
  type        = string
}

variable "model_store_uri" {
  description = "s3:// URI of the model bucket (model_store module)."
  type        = string
}

variable "model_reader_role_arn" {
  description = "IRSA role of the model pods (model_store module)."
  type        = string
}

variable "tierroute_values" {
  description = "Extra chart values merged last (e.g. tier replicas); the environment's values file comes first."
  type        = any
  default     = {}
}

variable "cert_manager_install" {
  description = "Install cert-manager (with its CRDs); false on a cluster that runs it already."
  type        = bool
  default     = true
}

variable "cert_manager_version" {
  description = "Version of the cert-manager chart (jetstack)."
  type        = string
  default     = "v1.17.2"
}

variable "cert_manager_namespace" {
  description = "Namespace of cert-manager (created when installed here), where the CA issuer's Secret lives."
  type        = string
  default     = "cert-manager"
}

variable "ca_issuer_create" {
  description = "Create the self-signed bootstrap and the CA ClusterIssuer; false when ca_issuer_name exists already."
  type        = bool
  default     = true
}

variable "ca_issuer_name" {
  description = "ClusterIssuer signing the chart's Certificates (security.tls.issuerRef of the release)."
  type        = string
  default     = "tierroute-ca"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.ca_issuer_name)) && length(var.ca_issuer_name) <= 50
    error_message = "ca_issuer_name must be a DNS label of at most 50 characters (the issuer chart appends -selfsigned)."
  }
}

variable "state_redis_url" {
  description = "The router state's Redis (rediss://...): set, the release counts budgets and rate limits there; empty: the environment's values decide."
  type        = string
  default     = ""
}

variable "state_redis_token" {
  description = "AUTH token of state_redis_url, put in the Kubernetes Secret the router mounts."
  type        = string
  default     = ""
  sensitive   = true
}
