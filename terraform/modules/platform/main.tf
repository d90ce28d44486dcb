# What runs on the cluster besides the node software: the monitoring stack, the NVIDIA GPU
# Operator (device plugin, feature discovery, DCGM exporter for GPU metrics), cert-manager with
# the CA ClusterIssuer the chart's Certificates use (cert_manager.tf), a default encrypted gp3
# StorageClass, and the tierroute chart itself.

locals {
  chart_path = var.tierroute_chart != "" ? var.tierroute_chart : "${path.module}/../../../helm/tierroute"
  # kube-prometheus-stack looks for dashboards and rules in every namespace, by label, so the
  # tierroute chart's ServiceMonitors, PrometheusRules and dashboard ConfigMaps are picked up.
  monitoring_values = {
    prometheus = {
      prometheusSpec = {
        serviceMonitorSelectorNilUsesHelmValues = false
        podMonitorSelectorNilUsesHelmValues     = false
        ruleSelectorNilUsesHelmValues           = false
        retention                               = var.prometheus_retention
        storageSpec = {
          volumeClaimTemplate = {
            spec = {
              storageClassName = kubernetes_storage_class_v1.gp3.metadata[0].name
              accessModes      = ["ReadWriteOnce"]
              resources        = { requests = { storage = var.prometheus_storage_size } }
            }
          }
        }
      }
    }
    grafana = {
      admin = {
        existingSecret = kubernetes_secret_v1.grafana_admin.metadata[0].name
        userKey        = "admin-user"
        passwordKey    = "admin-password"
      }
      sidecar = {
        dashboards = {
          enabled          = true
          label            = "grafana_dashboard"
          labelValue       = "1"
          searchNamespace  = "ALL"
          folderAnnotation = "grafana_folder"
          provider         = { foldersFromFilesStructure = true }
        }
      }
    }
  }
  # What Terraform knows of the tierroute release, between the environment's values file and
  # var.tierroute_values.
  tierroute_values = {
    imageRegistry = var.image_registry
    router        = { image = { tag = var.image_tag } }
    modelDefaults = { image = { tag = var.image_tag } }
    modelStore = {
      source      = "objectStore"
      objectStore = { uri = var.model_store_uri }
    }
    modelServiceAccount = {
      annotations = { "eks.amazonaws.com/role-arn" = var.model_reader_role_arn }
    }
    # The issuer of the chart's Certificates whenever the environment's values turn TLS on.
    security = {
      tls = {
        issuerRef = { name = var.ca_issuer_name, kind = "ClusterIssuer", group = "cert-manager.io" }
      }
    }
  }
  # The router state's Redis, when the stack provisioned one (ElastiCache): its endpoint and the
  # Secret with its AUTH token (the environment's values file holds the rest of state.*).
  state_values = [
    for url in [var.state_redis_url] : {
      state = {
        backend = "redis"
        redis   = { url = url, authSecret = "tierroute-redis-auth", authSecretKey = "auth-token" }
      }
    } if url != ""
  ]
  # The EKS NVIDIA AMI ships the driver and the container toolkit: the operator adds the rest.
  gpu_operator_values = {
    driver  = { enabled = false }
    toolkit = { enabled = false }
    dcgmExporter = {
      enabled        = true
      serviceMonitor = { enabled = true }
    }
  }
}

resource "kubernetes_namespace_v1" "this" {
  # node-exporter and the GPU operands need host access; tierroute and cert-manager need none.
  # A cert-manager that runs already (cert_manager_install = false) keeps its own namespace.
  for_each = merge(
    {
      monitoring                = "privileged"
      "gpu-operator"            = "privileged"
      (var.tierroute_namespace) = "restricted"
    },
    var.cert_manager_install ? { (var.cert_manager_namespace) = "restricted" } : {},
  )

  metadata {
    name = each.key
    labels = {
      "pod-security.kubernetes.io/enforce" = each.value
      "pod-security.kubernetes.io/warn"    = each.value
    }
  }
}

resource "kubernetes_storage_class_v1" "gp3" {
  metadata {
    name = "gp3-encrypted"
    annotations = {
      "storageclass.kubernetes.io/is-default-class" = "true"
    }
  }
  storage_provisioner    = "ebs.csi.aws.com"
  reclaim_policy         = "Retain"
  volume_binding_mode    = "WaitForFirstConsumer"
  allow_volume_expansion = true
  parameters = {
    type      = "gp3"
    encrypted = "true"
  }
}

resource "random_password" "grafana_admin" {
  length  = 32
  special = false
}

resource "kubernetes_secret_v1" "grafana_admin" {
  metadata {
    name      = "grafana-admin"
    namespace = kubernetes_namespace_v1.this["monitoring"].metadata[0].name
  }
  data = {
    "admin-user"     = "admin"
    "admin-password" = random_password.grafana_admin.result
  }
}

resource "helm_release" "kube_prometheus_stack" {
  name       = "kube-prometheus-stack"
  namespace  = kubernetes_namespace_v1.this["monitoring"].metadata[0].name
  repository = var.chart_repositories["kube_prometheus_stack"]
  chart      = "kube-prometheus-stack"
  version    = var.kube_prometheus_stack_version
  values     = [yamlencode(local.monitoring_values)]
  timeout    = 900
}

resource "helm_release" "gpu_operator" {
  name       = "gpu-operator"
  namespace  = kubernetes_namespace_v1.this["gpu-operator"].metadata[0].name
  repository = var.chart_repositories["gpu_operator"]
  chart      = "gpu-operator"
  version    = var.gpu_operator_version
  values     = [yamlencode(local.gpu_operator_values)]
  timeout    = 900

  # The DCGM exporter's ServiceMonitor needs the Prometheus Operator CRDs.
  depends_on = [helm_release.kube_prometheus_stack]
}

resource "kubernetes_secret_v1" "redis_auth" {
  count = var.state_redis_url == "" ? 0 : 1
  metadata {
    name      = "tierroute-redis-auth"
    namespace = kubernetes_namespace_v1.this[var.tierroute_namespace].metadata[0].name
  }
  data = {
    "auth-token" = var.state_redis_token
  }
}

resource "helm_release" "tierroute" {
  name      = "tierroute"
  namespace = kubernetes_namespace_v1.this[var.tierroute_namespace].metadata[0].name
  chart     = local.chart_path
  version   = var.tierroute_chart_version
  # Model pods become ready only after loading their weights: wait long enough for the
  # largest tier's startup probe instead of failing the apply.
  wait    = true
  timeout = 3600

  values = [
    file("${path.module}/../../../helm/tierroute/values-${var.environment}.yaml"),
    yamlencode(local.tierroute_values),
    yamlencode(merge({}, local.state_values...)),
    yamlencode(var.tierroute_values),
  ]

  # Certificates need cert-manager's CRDs and webhook, and the issuer to sign them.
  depends_on = [
    helm_release.kube_prometheus_stack,
    helm_release.gpu_operator,
    helm_release.cert_manager,
    helm_release.ca_issuer,
    kubernetes_secret_v1.redis_auth,
  ]
}
