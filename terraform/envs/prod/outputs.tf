output "cluster_name" {
  description = "EKS cluster: aws eks update-kubeconfig --name <this> --region <region>."
  value       = module.stack.cluster_name
}

output "model_bucket_uri" {
  description = "Where to upload the weights: one folder per tier's `model` value."
  value       = module.stack.model_bucket_uri
}

output "image_repositories" {
  description = "ECR repositories for the router and model images."
  value       = module.stack.image_repositories
}

output "grafana_admin_secret" {
  description = "namespace/name of the Secret with Grafana's admin password."
  value       = module.stack.grafana_admin_secret
}
