# dev: small and cheap. Spot CPU nodes, one NAT gateway, one H100 per tier (p5.4xlarge) and
# scale-to-zero allowed on the GPU group when nobody is testing.
environment = "dev"
region      = "us-east-1"
owner       = "platform-team"
cost_center = "ml-inference-dev"

stack = {
  availability_zones     = ["us-east-1a", "us-east-1b"]
  vpc_cidr               = "10.20.0.0/16"
  single_nat_gateway     = true
  kubernetes_version     = "1.33"
  image_tag              = "0.1.0"
  log_retention_days     = 365
  endpoint_public_access = false
  public_access_cidrs    = []
  admin_principal_arns   = []
  image_registry         = ""
  tierroute_values       = {}
  # cert-manager and the tierroute-ca ClusterIssuer (values-prod.yaml's issuerRef); on a
  # cluster that runs cert-manager already: install = false (and create_issuer = false if the
  # issuer exists too).
  cert_manager = { install = true, create_issuer = true, issuer_name = "tierroute-ca" }
  # Shared router state in the chart's small dev Redis (values-dev.yaml), not ElastiCache.
  state_store = { enabled = false }

  node_groups = {
    cpu = {
      instance_types = ["m7i.xlarge", "m6i.xlarge"]
      capacity_type  = "SPOT"
      gpu            = false
      min_size       = 2
      max_size       = 4
      desired_size   = 2
      disk_size_gb   = 50
      labels         = { "tierroute/pool" = "cpu" }
      taints         = []
    }
    gpu = {
      instance_types = ["p5.4xlarge"]
      capacity_type  = "ON_DEMAND"
      gpu            = true
      min_size       = 0
      max_size       = 2
      desired_size   = 2
      disk_size_gb   = 200
      labels         = { "tierroute/pool" = "gpu" }
      taints = [
        { key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" },
      ]
    }
  }
}
