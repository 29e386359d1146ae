resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest is used; a customer-managed KMS key adds key rotation and IAM to operate without a compliance requirement asking for it.
  location      = var.region
  repository_id = var.registry_repository_id
  format        = "DOCKER"
  description   = "cloudmask predictor and transformer images, tagged with the commit SHA"

  # A tag names one build forever: rollouts and rollbacks point at SHAs, never at a moving tag.
  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 30
    }
  }

  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "1209600s" # 14 days: layers of superseded cache exports
    }
  }

  depends_on = [google_project_service.this]
}

# Nodes pull the images with their own (node) identity.
resource "google_artifact_registry_repository_iam_member" "nodes_reader" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}
