# Two identities, no keys anywhere:
#   model reader - what KServe's storage initializer runs as (Workload Identity, read-only on models)
#   deployer     - what GitHub Actions runs as (Workload Identity Federation, push/rollout/upload)

# ---------------------------------------------------------------- model reader (in-cluster)

resource "google_service_account" "model_reader" {
  account_id   = "${var.cluster_name}-model-reader"
  display_name = "cloudmask InferenceService: reads model versions from ${local.model_bucket_name}"
}

resource "google_storage_bucket_iam_member" "model_reader" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.model_reader.member
}

# Only Pods running as <kserve_namespace>/<model_reader_ksa> may act as the model reader.
resource "google_service_account_iam_member" "model_reader_workload_identity" {
  service_account_id = google_service_account.model_reader.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.kserve_namespace}/${var.model_reader_ksa}]"

  depends_on = [google_container_cluster.this] # the identity pool exists once the cluster does
}

# The InferenceService sets serviceAccountName to this account; the storage initializer (an
# init container of the same Pod) then gets the model reader's token from the GKE metadata
# server. It never calls the Kubernetes API, so no API token is mounted.
resource "kubernetes_service_account_v1" "model_reader" {
  metadata {
    name      = var.model_reader_ksa
    namespace = kubernetes_namespace_v1.serving.metadata[0].name
    annotations = {
      "iam.gke.io/gcp-service-account" = google_service_account.model_reader.email
    }
  }
  automount_service_account_token = false
}

# ---------------------------------------------------------------- deployer (GitHub Actions)

resource "google_service_account" "deployer" {
  account_id   = "${var.cluster_name}-deployer"
  display_name = "GitHub Actions of ${var.github_repository}: push images, upload models, roll out"
}

resource "google_artifact_registry_repository_iam_member" "deployer_writer" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deployer.member
}

resource "google_storage_bucket_iam_member" "deployer_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.deployer.member
}

# Patch InferenceServices and read their status (rollout start/promote/rollback).
resource "google_project_iam_member" "deployer_gke" {
  project = var.project_id
  role    = "roles/container.developer"
  member  = google_service_account.deployer.member
}

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = var.wif_pool_id
  display_name              = "GitHub Actions"
  description               = "OIDC tokens of GitHub Actions runs of ${var.github_repository}"

  depends_on = [google_project_service.this]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition pins assertion.sub to repo:<github_repository>:ref:<github_deploy_ref>, but checkov cannot resolve github_repository (no default by design); tests/deploy/test_terraform.py runs this check on the condition rendered with real values.
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = var.wif_provider_id
  display_name                       = "GitHub OIDC"

  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
    "attribute.actor"      = "assertion.actor"
  }

  # Tokens from any other repository, or from any other ref, are rejected at the exchange.
  # The sub claim is repo:<owner>/<name>:ref:<ref> for jobs without a GitHub environment (the
  # workflows here use none; a job with `environment:` gets a different sub and is refused).
  attribute_condition = "assertion.repository == '${var.github_repository}' && assertion.sub == 'repo:${var.github_repository}:ref:${var.github_deploy_ref}'"

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "deployer_federation" {
  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}
