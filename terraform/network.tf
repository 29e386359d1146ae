resource "google_compute_network" "this" {
  name                    = "${var.cluster_name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.this]
}

# VPC-native cluster: Pods and Services get their own secondary ranges on the node subnet.
resource "google_compute_subnetwork" "nodes" {
  name                     = "${var.cluster_name}-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true # private nodes reach Artifact Registry and GCS without NAT

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes have no external IPs; Cloud NAT gives them egress for images outside
# Artifact Registry (ghcr.io for KServe, gcr.io for Knative, quay.io for cert-manager).
resource "google_compute_router" "this" {
  name    = "${var.cluster_name}-router"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  name                               = "${var.cluster_name}-nat"
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Admission webhooks (cert-manager 10250, Knative 8443, KServe 9443) are called by the control
# plane; a private cluster's default rules only open 443 and 10250 from it.
resource "google_compute_firewall" "control_plane_to_webhooks" {
  name          = "${var.cluster_name}-control-plane-webhooks"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  source_ranges = [var.master_ipv4_cidr_block]
  target_tags   = [local.node_tag]

  allow {
    protocol = "tcp"
    ports    = ["8443", "9443", "10250"]
  }
}

# Static address for the Kourier gateway's load balancer: the Knative domain (and so every
# InferenceService URL) stays valid across re-installs of the ingress.
resource "google_compute_address" "ingress" {
  name         = "${var.cluster_name}-ingress"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"

  depends_on = [google_project_service.this]
}
