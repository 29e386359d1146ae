# The serving stack, installed with pinned charts in dependency order:
#
#   cert-manager ──────────────┐
#                              ├─> kserve-crd ─> kserve (controller, Knative deployment mode)
#   knative-operator ─> knative-serving (+ Kourier) ─┘
#
# Networking layer: Kourier, not Istio. cloudmask needs an ingress that routes HTTP and h2c
# (the transformer talks gRPC to the predictor) and splits traffic between revisions (the
# canary); Knative does the splitting itself, so a full mesh buys nothing here. Kourier is one
# Envoy Deployment plus its controller, maintained by Knative, installed by the same operator
# at the same version as Serving (no second version matrix to track), with no sidecars and no
# mesh CRDs on the nodes. Given up: Istio's mTLS between Pods (Dataplane V2 NetworkPolicy is
# available instead) and KServe's Istio VirtualService for path-based top-level routing
# (disableIstioVirtualHost below): the InferenceService URL is then its transformer's route.

locals {
  # Exact chart versions; bump them together after reading each project's upgrade notes.
  chart_versions = {
    cert_manager     = "v1.21.1"
    knative_operator = "v1.23.0"
    knative_serving  = "0.1.0" # local chart terraform/charts/knative-serving (Chart.yaml)
    kserve           = "v0.20.0"
  }
  knative_serving_version = "1.23" # Serving release the operator installs (spec.version)

  serving_domain = var.serving_domain != "" ? var.serving_domain : "${google_compute_address.ingress.address}.sslip.io"
}

resource "kubernetes_namespace_v1" "serving" {
  metadata {
    name = var.kserve_namespace
    labels = {
      # Knative's queue-proxy and KServe's storage initializer are not all "restricted"-clean
      # yet: enforce baseline, surface restricted violations as warnings and audit events.
      "pod-security.kubernetes.io/enforce" = "baseline"
      "pod-security.kubernetes.io/warn"    = "restricted"
      "pod-security.kubernetes.io/audit"   = "restricted"
    }
  }

  depends_on = [google_container_node_pool.this]
}

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = local.chart_versions.cert_manager
  namespace        = "cert-manager"
  create_namespace = true
  wait             = true
  timeout          = 600

  values = [yamlencode({
    crds = { enabled = true }
  })]

  depends_on = [google_container_node_pool.this, google_compute_firewall.control_plane_to_webhooks]
}

resource "helm_release" "knative_operator" {
  name             = "knative-operator"
  repository       = "https://knative.github.io/operator"
  chart            = "knative-operator"
  version          = local.chart_versions.knative_operator
  namespace        = "knative-operator"
  create_namespace = true
  wait             = true
  timeout          = 600

  depends_on = [google_container_node_pool.this, google_compute_firewall.control_plane_to_webhooks]
}

# A KnativeServing resource (local chart, so it is applied after the operator's CRDs exist)
# that installs Serving with Kourier behind the reserved static IP.
resource "helm_release" "knative_serving" {
  name             = "knative-serving"
  chart            = "${path.module}/charts/knative-serving"
  version          = local.chart_versions.knative_serving
  namespace        = "knative-serving"
  create_namespace = true
  wait             = true
  timeout          = 900

  values = [yamlencode({
    servingVersion     = local.knative_serving_version
    domain             = local.serving_domain
    ingressAddressName = google_compute_address.ingress.name
  })]

  depends_on = [helm_release.knative_operator]
}

resource "helm_release" "kserve_crd" {
  name             = "kserve-crd"
  chart            = "oci://ghcr.io/kserve/charts/kserve-crd"
  version          = local.chart_versions.kserve
  namespace        = "kserve"
  create_namespace = true
  wait             = true
  timeout          = 600

  depends_on = [helm_release.cert_manager]
}

resource "helm_release" "kserve" {
  name      = "kserve"
  chart     = "oci://ghcr.io/kserve/charts/kserve-resources"
  version   = local.chart_versions.kserve
  namespace = "kserve"
  wait      = true
  timeout   = 900

  values = [yamlencode({
    kserve = {
      controller = {
        deploymentMode = "Knative" # the default for every InferenceService
        gateway = {
          # Kourier, not Istio: no VirtualService for the top-level route (see above).
          disableIstioVirtualHost = true
        }
      }
    }
  })]

  depends_on = [helm_release.kserve_crd, helm_release.cert_manager, helm_release.knative_serving]
}
