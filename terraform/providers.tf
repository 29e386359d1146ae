provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}

# Pinned and configured alongside `google` so a beta-only GKE field can be adopted resource by
# resource (`provider = google-beta`) without a new provider entering the lock file mid-project.
provider "google-beta" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}

# Short-lived OAuth token of whoever runs Terraform (user or CI identity); no kubeconfig, no keys.
data "google_client_config" "current" {}

locals {
  cluster_host           = "https://${google_container_cluster.this.endpoint}"
  cluster_ca_certificate = base64decode(google_container_cluster.this.master_auth[0].cluster_ca_certificate)
}

# The Kubernetes-side providers reach the control plane's IP endpoint, which admits only
# var.master_authorized_networks: run `terraform apply` from one of those networks.
provider "kubernetes" {
  host                   = local.cluster_host
  token                  = data.google_client_config.current.access_token
  cluster_ca_certificate = local.cluster_ca_certificate
}

provider "helm" {
  kubernetes = {
    host                   = local.cluster_host
    token                  = data.google_client_config.current.access_token
    cluster_ca_certificate = local.cluster_ca_certificate
  }
}
