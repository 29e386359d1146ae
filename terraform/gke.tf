locals {
  node_tag   = "${var.cluster_name}-node"
  node_zones = length(var.node_zones) > 0 ? var.node_zones : null
  gpu_zones  = length(var.gpu_pool.zones) > 0 ? var.gpu_pool.zones : local.node_zones

  # Every pool: Container-Optimized OS, Shielded VM with secure boot, GKE metadata server (the
  # only way Pods get Google credentials is Workload Identity), legacy metadata endpoints off.
  node_metadata = { disable-legacy-endpoints = "true" }
}

# Least-privilege identity for the node VMs (instead of the Compute Engine default account):
# write logs and metrics, pull images from our registry, nothing else.
resource "google_service_account" "nodes" {
  account_id   = "${var.cluster_name}-nodes"
  display_name = "GKE nodes of ${var.cluster_name}"
}

resource "google_project_iam_member" "nodes_default" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.nodes.member
}

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_66:Binary Authorization needs an attestor pipeline this project does not run yet; images come only from our registry, tagged by commit SHA with immutable tags.
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Google Workspace domain; access is granted through IAM (roles/container.developer) instead.
  #checkov:skip=CKV_GCP_24:PodSecurityPolicy was removed in Kubernetes 1.25; Pod Security Admission and the manifests' securityContext replace it.
  name     = var.cluster_name
  location = var.region # regional: the control plane survives a zone outage

  network    = google_compute_network.this.id
  subnetwork = google_compute_subnetwork.nodes.id

  # Node pools are managed below; the default one only exists for the create call.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = var.deletion_protection

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false # the IP endpoint stays reachable, but only from master_authorized_networks
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false

    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  # GitHub-hosted runners have no fixed IPs: CI reaches the control plane through the DNS
  # endpoint, where every request is authorized by IAM (the deployer's container.developer).
  control_plane_endpoints_config {
    dns_endpoint_config {
      allow_external_traffic = true
    }
  }

  enable_shielded_nodes       = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true
  datapath_provider           = "ADVANCED_DATAPATH" # Dataplane V2 enforces NetworkPolicy

  # Calico network policy stays off: Dataplane V2 (above) is the NetworkPolicy enforcer.
  network_policy {
    enabled = false
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
    managed_prometheus {
      enabled = true
    }
  }

  addons_config {
    http_load_balancing {
      disabled = false
    }
    horizontal_pod_autoscaling {
      disabled = false
    }
    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
  }

  maintenance_policy {
    daily_maintenance_window {
      start_time = "03:00"
    }
  }

  resource_labels = var.labels

  # Settings of the short-lived default pool, kept as strict as the real pools.
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    image_type      = "COS_CONTAINERD"
    metadata        = local.node_metadata
    tags            = [local.node_tag]

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  depends_on = [google_project_service.this, google_project_iam_member.nodes_default]
}

# The node pools, written once: what differs between them is in local.node_pools, the rest
# (autoscaling, management, surge upgrades, the hardened node config) is the same for all.
locals {
  pool_specs = {
    # cert-manager, Knative, Kourier, KServe controller
    system = {
      settings        = var.system_pool
      zones           = local.node_zones
      location_policy = "BALANCED"
      accelerators    = []
      taints          = []
    }
    # transformer and predictor pods (the manifests' nodeSelector cloudmask.io/pool=inference)
    inference = {
      settings        = var.inference_pool
      zones           = local.node_zones
      location_policy = "ANY" # take capacity wherever it is when Knative scales out
      accelerators    = []
      taints          = []
    }
    # Optional: only the predictor of the prod overlay with components/gpu (nodeSelector
    # cloudmask.io/pool=gpu plus a toleration) lands here; the taint keeps every other Pod off
    # the expensive nodes.
    gpu = {
      settings        = var.gpu_pool
      zones           = local.gpu_zones
      location_policy = "ANY"
      accelerators    = [{ type = var.gpu_pool.accelerator_type, count = var.gpu_pool.accelerators_per_node }]
      taints          = [{ key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" }]
    }
  }
  node_pools = { for name, pool in local.pool_specs : name => pool if name != "gpu" || var.gpu_pool.enabled }
}

resource "google_container_node_pool" "this" {
  for_each = local.node_pools

  name           = each.key
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = each.value.zones

  autoscaling {
    total_min_node_count = each.value.settings.min_nodes
    total_max_node_count = each.value.settings.max_nodes
    location_policy      = each.value.location_policy
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = each.value.settings.machine_type
    disk_size_gb    = each.value.settings.disk_size_gb
    disk_type       = "pd-balanced"
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    metadata        = local.node_metadata
    tags            = [local.node_tag]
    resource_labels = var.labels
    labels          = { "cloudmask.io/pool" = each.key }

    dynamic "guest_accelerator" {
      for_each = each.value.accelerators
      content {
        type  = guest_accelerator.value.type
        count = guest_accelerator.value.count

        gpu_driver_installation_config {
          gpu_driver_version = "LATEST" # GKE installs the driver matching the node image
        }
      }
    }

    dynamic "taint" {
      for_each = each.value.taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# The pools were three resources before; these keep an existing state's pools (no destroy and
# re-create of the nodes) when it is planned with this configuration.
moved {
  from = google_container_node_pool.system
  to   = google_container_node_pool.this["system"]
}

moved {
  from = google_container_node_pool.inference
  to   = google_container_node_pool.this["inference"]
}

moved {
  from = google_container_node_pool.gpu[0]
  to   = google_container_node_pool.this["gpu"]
}
