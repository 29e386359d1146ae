output "project_id" {
  description = "Project that holds everything."
  value       = var.project_id
}

output "region" {
  description = "Region of the cluster, registry and bucket."
  value       = var.region
}

output "cluster_name" {
  description = "GKE cluster name (get-gke-credentials cluster_name)."
  value       = google_container_cluster.this.name
}

output "cluster_location" {
  description = "GKE cluster location (get-gke-credentials location)."
  value       = google_container_cluster.this.location
}

output "artifact_registry_url" {
  description = "Docker registry path; images are <url>/cloudmask-predictor:<sha> and <url>/cloudmask-transformer:<sha>."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "workload_identity_provider" {
  description = "Full resource name of the GitHub OIDC provider (google-github-actions/auth workload_identity_provider)."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "deployer_service_account" {
  description = "Service account GitHub Actions impersonates (google-github-actions/auth service_account)."
  value       = google_service_account.deployer.email
}

output "model_bucket" {
  description = "Versioned model bucket; model releases go to gs://<bucket>/models/<release>/<model-name>/<version>/ (a copy of the repo models/ tree per release)."
  value       = google_storage_bucket.models.name
}

output "model_reader_service_account" {
  description = "Service account the storage initializer acts as through Workload Identity."
  value       = google_service_account.model_reader.email
}

output "kserve_namespace" {
  description = "Namespace of the InferenceService."
  value       = kubernetes_namespace_v1.serving.metadata[0].name
}

output "model_reader_ksa" {
  description = "Kubernetes service account the InferenceService must run as (serviceAccountName)."
  value       = kubernetes_service_account_v1.model_reader.metadata[0].name
}

output "ingress_ip" {
  description = "Static IP of the Kourier gateway's load balancer."
  value       = google_compute_address.ingress.address
}

output "serving_domain" {
  description = "Knative domain: InferenceService URLs are http://<name>.<namespace>.<domain> style hosts under it."
  value       = local.serving_domain
}

# One place to copy from into the GitHub repository's Actions variables (not secrets: none of
# these grants anything without a federated token from this repository).
output "github_actions_variables" {
  description = "Repository variables read by .github/workflows/images.yml and rollout.yml."
  value = {
    GCP_PROJECT_ID                 = var.project_id
    GCP_WORKLOAD_IDENTITY_PROVIDER = google_iam_workload_identity_pool_provider.github.name
    GCP_DEPLOYER_SERVICE_ACCOUNT   = google_service_account.deployer.email
    ARTIFACT_REGISTRY              = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
    GKE_CLUSTER                    = google_container_cluster.this.name
    GKE_LOCATION                   = google_container_cluster.this.location
    MODEL_BUCKET                   = google_storage_bucket.models.name
    KSERVE_NAMESPACE               = kubernetes_namespace_v1.serving.metadata[0].name
  }
}
