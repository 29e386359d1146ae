# Provider versions are pinned to a minor-compatible range (~>): patch and minor fixes flow in
# through `terraform init -upgrade`, a new major (breaking schema changes) never does. Commit the
# .terraform.lock.hcl that the first `terraform init` writes so every run uses the same builds.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.31"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.31"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 3.0"
    }
    # 3.x: `kubernetes = { ... }` is an attribute in the provider block and `set` is a list.
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.1"
    }
  }

  # Partial configuration: bucket and prefix come from `terraform init -backend-config=backend.hcl`
  # (see backend.hcl.example), so no project-specific name is committed.
  backend "gcs" {}
}
