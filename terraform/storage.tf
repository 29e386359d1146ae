locals {
  model_bucket_name = coalesce(var.model_bucket_name, "${var.project_id}-cloudmask-models")
}

# Model releases live at gs://<bucket>/models/<release>/<model-name>/<version>/ (each release a
# copy of the repo's models/ tree); the predictor's STORAGE_URI names one release.
resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:Access is traced by Cloud Audit Logs (Data Access) on the bucket; legacy usage-log buckets would need a second bucket with its own retention.
  name                        = local.model_bucket_name
  location                    = var.region # same region as the cluster: no egress, fast storage-initializer downloads
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # An overwritten or deleted model version stays recoverable.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 5
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}
