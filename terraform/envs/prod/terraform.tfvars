# prod: three zones, a NAT gateway per zone, on-demand CPU nodes for the router, and one
# p5.48xlarge group per tier pool: gpu-small (8 x H100 = up to 8 small-tier replicas per node)
# and gpu-large (8 x H100 = two tensor-parallel-4 large-tier replicas per node).
environment = "prod"
region      = "us-east-1"
owner       = "platform-team"
cost_center = "ml-inference"

stack = {
  availability_zones     = ["us-east-1a", "us-east-1b", "us-east-1c"]
  vpc_cidr               = "10.30.0.0/16"
  single_nat_gateway     = false
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
  # The router replicas' shared budgets and rate limits: ElastiCache for Redis (TLS, at-rest
  # encryption, AUTH token in Secrets Manager) in the VPC; its endpoint goes to the release.
  state_store = { enabled = true, node_type = "cache.t4g.small", replicas = 2 }

  node_groups = {
    cpu = {
      instance_types = ["c7i.2xlarge", "c6i.2xlarge"]
      capacity_type  = "ON_DEMAND"
      gpu            = false
      min_size       = 3
      max_size       = 12
      desired_size   = 3
      disk_size_gb   = 50
      labels         = { "tierroute/pool" = "cpu" }
      taints         = []
    }
    "gpu-small" = {
      instance_types = ["p5.48xlarge"]
      capacity_type  = "ON_DEMAND"
      gpu            = true
      min_size       = 1
      max_size       = 3
      desired_size   = 1
      disk_size_gb   = 200
      labels         = { "tierroute/pool" = "gpu-small" }
      taints = [
        { key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" },
      ]
    }
    "gpu-large" = {
      instance_types = ["p5.48xlarge"]
      capacity_type  = "ON_DEMAND"
      gpu            = true
      min_size       = 1
      max_size       = 3
      desired_size   = 1
      disk_size_gb   = 200
      labels         = { "tierroute/pool" = "gpu-large" }
      taints = [
        { key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" },
      ]
    }
  }
}
