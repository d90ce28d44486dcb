# Provider configurations stay in the roots (envs/<env>/providers.tf); this module and the ones
# it calls inherit them. The modules it calls pin the providers they use themselves.
terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
