terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # The state of the state bucket itself stays local (commit nothing: keep it with the account's
  # administrators, or migrate it into the bucket after the first apply).
}
