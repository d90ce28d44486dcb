output "cluster_name" {
  description = "EKS cluster: aws eks update-kubeconfig --name <this> --region <region>."
  value       = module.eks.cluster_name
}

output "model_bucket_uri" {
  description = "Where to upload the weights: one folder per tier's `model` value."
  value       = module.model_store.bucket_uri
}

output "image_repositories" {
  description = "ECR repositories for the router and model images."
  value       = module.registry.repository_urls
}

output "grafana_admin_secret" {
  description = "namespace/name of the Secret with Grafana's admin password."
  value       = module.platform.grafana_admin_secret
}

output "cluster_endpoint" {
  description = "EKS API endpoint, for the root's kubernetes and helm providers."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the EKS API, for the root's kubernetes and helm providers."
  value       = module.eks.cluster_certificate_authority_data
}
