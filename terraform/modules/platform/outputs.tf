output "tierroute_namespace" {
  description = "Namespace of the tierroute release."
  value       = helm_release.tierroute.namespace
}

output "router_service" {
  description = "The router's Service (gRPC 50051): kubectl port-forward svc/<this> 50051."
  value       = "tierroute-router"
}

output "grafana_admin_secret" {
  description = "namespace/name of the Secret holding Grafana's admin password."
  value       = "${kubernetes_secret_v1.grafana_admin.metadata[0].namespace}/${kubernetes_secret_v1.grafana_admin.metadata[0].name}"
}

output "certificate_issuer" {
  description = "The cert-manager ClusterIssuer the chart's Certificates name (security.tls.issuerRef)."
  value       = { kind = "ClusterIssuer", name = var.ca_issuer_name, created = var.ca_issuer_create }
}
