# cert-manager and the CA ClusterIssuer that signs the chart's Certificates (security.tls with
# an issuerRef: values-prod.yaml). Order: cert-manager with its CRDs, then the issuer chart, then
# the tierroute release. The issuer is a tiny local chart, not kubernetes_manifest resources:
# kubernetes_manifest reads the CRDs' schemas at plan time, so a first plan on a cluster without
# cert-manager would fail; a helm_release plans without them.

locals {
  cert_manager_values = {
    crds = {
      enabled = true
      # Deleting the release must not delete every Certificate (and the Secrets they own).
      keep = true
    }
    global = {
      # Its leases in its own namespace, not kube-system.
      leaderElection = { namespace = var.cert_manager_namespace }
    }
    # Two controllers and webhooks: a drained node never blocks issuing or admitting.
    replicaCount              = 2
    podDisruptionBudget       = { enabled = true, minAvailable = 1 }
    enableCertificateOwnerRef = true
    securityContext           = local.cert_manager_pod_security
    containerSecurityContext  = local.cert_manager_container_security
    resources                 = local.cert_manager_resources
    webhook = {
      replicaCount             = 2
      podDisruptionBudget      = { enabled = true, minAvailable = 1 }
      securityContext          = local.cert_manager_pod_security
      containerSecurityContext = local.cert_manager_container_security
      resources                = local.cert_manager_resources
    }
    cainjector = {
      securityContext          = local.cert_manager_pod_security
      containerSecurityContext = local.cert_manager_container_security
      resources                = local.cert_manager_resources
    }
    # The post-install check waits until the webhook admits resources, so the issuer chart
    # that follows is not refused by a webhook still starting.
    startupapicheck = {
      enabled                  = true
      securityContext          = local.cert_manager_pod_security
      containerSecurityContext = local.cert_manager_container_security
    }
    # Its metrics (certificate expiry, issuance errors) to the kube-prometheus-stack.
    prometheus = {
      enabled        = true
      servicemonitor = { enabled = true }
    }
  }
  # What Pod Security `restricted` demands of every pod in the namespace, set explicitly rather
  # than trusting the chart's defaults to stay so.
  cert_manager_pod_security = {
    runAsNonRoot   = true
    seccompProfile = { type = "RuntimeDefault" }
  }
  cert_manager_container_security = {
    allowPrivilegeEscalation = false
    readOnlyRootFilesystem   = true
    capabilities             = { drop = ["ALL"] }
  }
  cert_manager_resources = {
    requests = { cpu = "50m", memory = "128Mi" }
    limits   = { memory = "512Mi" }
  }
}

resource "helm_release" "cert_manager" {
  count = var.cert_manager_install ? 1 : 0

  name       = "cert-manager"
  namespace  = kubernetes_namespace_v1.this[var.cert_manager_namespace].metadata[0].name
  repository = var.chart_repositories["cert_manager"]
  chart      = "cert-manager"
  version    = var.cert_manager_version
  values     = [yamlencode(local.cert_manager_values)]
  timeout    = 600

  # The ServiceMonitor needs the Prometheus Operator CRDs.
  depends_on = [helm_release.kube_prometheus_stack]
}

resource "helm_release" "ca_issuer" {
  count = var.ca_issuer_create ? 1 : 0

  name = "tierroute-ca-issuer"
  # A ClusterIssuer reads its CA Secret from cert-manager's cluster resource namespace, which
  # is cert-manager's own namespace unless it was installed otherwise.
  namespace = var.cert_manager_namespace
  chart     = "${path.module}/charts/ca-issuer"
  values = [yamlencode({
    issuerName = var.ca_issuer_name
  })]

  depends_on = [helm_release.cert_manager]
}
