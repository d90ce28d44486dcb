# The dev or prod root: the whole environment is modules/stack; this file only names the tags the
# aws provider and the stack share. dev and prod have identical roots apart from the state key in
# versions.tf; they differ in terraform.tfvars only.

locals {
  tags = {
    Project     = "tierroute"
    Environment = var.environment
    Owner       = var.owner
    CostCenter  = var.cost_center
    ManagedBy   = "terraform"
  }
}

module "stack" {
  source = "../../modules/stack"

  environment            = var.environment
  region                 = var.region
  tags                   = local.tags
  availability_zones     = var.stack.availability_zones
  vpc_cidr               = var.stack.vpc_cidr
  single_nat_gateway     = var.stack.single_nat_gateway
  kubernetes_version     = var.stack.kubernetes_version
  endpoint_public_access = var.stack.endpoint_public_access
  public_access_cidrs    = var.stack.public_access_cidrs
  admin_principal_arns   = var.stack.admin_principal_arns
  node_groups            = var.stack.node_groups
  image_registry         = var.stack.image_registry
  image_tag              = var.stack.image_tag
  tierroute_values       = var.stack.tierroute_values
  log_retention_days     = var.stack.log_retention_days
  cert_manager           = var.stack.cert_manager
  state_store            = var.stack.state_store
}
