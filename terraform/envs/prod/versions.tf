terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36"
    }
  }

  # State in the S3 bucket made by terraform/bootstrap: encrypted with its KMS key, locked with
  # S3's native lock file. Bucket, region and key come from -backend-config at init:
  #   terraform init -backend-config="bucket=<state_bucket>" -backend-config="region=<region>" \
  #     -backend-config="kms_key_id=<state_kms_key_arn>"
  backend "s3" {
    key          = "tierroute/prod/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
