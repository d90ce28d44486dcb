# One whole tierroute environment on EKS: network, cluster with a CPU and GPU node groups, model
# bucket, image registry, the router state's Redis (when enabled), then the monitoring stack, the GPU operator, cert-manager with its CA
# issuer and the chart. envs/dev and envs/prod call this module alike; they differ in
# terraform.tfvars only.

locals {
  name = "tierroute-${var.environment}"
}

module "network" {
  source = "../network"

  name                    = local.name
  cluster_name            = local.name
  cidr_block              = var.vpc_cidr
  availability_zones      = var.availability_zones
  single_nat_gateway      = var.single_nat_gateway
  kms_key_arn             = aws_kms_key.platform.arn
  flow_log_retention_days = var.log_retention_days
  tags                    = var.tags
}

module "eks" {
  source = "../eks"

  name                   = local.name
  kubernetes_version     = var.kubernetes_version
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = var.endpoint_public_access
  public_access_cidrs    = var.public_access_cidrs
  admin_principal_arns   = var.admin_principal_arns
  node_groups            = var.node_groups
  log_kms_key_arn        = aws_kms_key.platform.arn
  log_retention_days     = var.log_retention_days
  tags                   = var.tags
}

module "model_store" {
  source = "../model_store"

  name              = local.name
  bucket_name       = "${local.name}-models-${data.aws_caller_identity.current.account_id}"
  kms_key_arn       = aws_kms_key.platform.arn
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  service_account   = "tierroute/tierroute-model"
  tags              = var.tags
}

module "registry" {
  source = "../registry"

  kms_key_arn = aws_kms_key.platform.arn
  tags        = var.tags
}

module "state_store" {
  source = "../state_store"
  count  = var.state_store.enabled ? 1 : 0

  name               = local.name
  vpc_id             = module.network.vpc_id
  subnet_ids         = module.network.private_subnet_ids
  client_cidr_blocks = [var.vpc_cidr]
  kms_key_arn        = aws_kms_key.platform.arn
  node_type          = var.state_store.node_type
  replicas           = var.state_store.replicas
  tags               = var.tags
}

module "platform" {
  source = "../platform"

  environment           = var.environment
  image_registry        = var.image_registry != "" ? var.image_registry : module.registry.registry
  image_tag             = var.image_tag
  model_store_uri       = module.model_store.bucket_uri
  model_reader_role_arn = module.model_store.reader_role_arn
  tierroute_values      = var.tierroute_values
  cert_manager_install  = var.cert_manager.install
  ca_issuer_create      = var.cert_manager.create_issuer
  ca_issuer_name        = var.cert_manager.issuer_name
  state_redis_url       = var.state_store.enabled ? module.state_store[0].url : ""
  state_redis_token     = var.state_store.enabled ? module.state_store[0].auth_token : ""

  depends_on = [module.eks]
}
