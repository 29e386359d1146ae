# Project-specific inputs (project, region, repository, admin networks) have no default on
# purpose: a plan must never land in somebody else's project by accident.

variable "project_id" {
  type        = string
  description = "Google Cloud project ID that hosts the cluster, registry, bucket and identities."
}

variable "region" {
  type        = string
  description = "Region for the regional GKE cluster, subnet, Cloud NAT, Artifact Registry and model bucket (e.g. europe-west4)."
}

variable "github_repository" {
  type        = string
  description = "GitHub repository allowed to deploy through Workload Identity Federation, as owner/name."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_deploy_ref" {
  type        = string
  description = "The one Git ref whose workflow runs may impersonate the deployer (images.yml runs on pushes to it; dispatch rollout.yml from it)."
  default     = "refs/heads/main"

  validation {
    condition     = startswith(var.github_deploy_ref, "refs/")
    error_message = "github_deploy_ref must be a full ref such as refs/heads/main."
  }
}

variable "master_authorized_networks" {
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  description = "CIDR blocks allowed to reach the control plane's IP endpoint (where Terraform and operators run). CI uses the IAM-authorized DNS endpoint instead."
}

variable "cluster_name" {
  type        = string
  description = "Name of the GKE cluster; also prefixes the network, router, NAT and service account names."
  default     = "cloudmask"

  validation {
    # service account IDs are at most 30 characters: "<cluster_name>-model-reader"
    condition     = can(regex("^[a-z][a-z0-9-]{2,16}$", var.cluster_name))
    error_message = "cluster_name must be 3-17 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "release_channel" {
  type        = string
  description = "GKE release channel that drives control plane and node upgrades."
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse `terraform destroy` of the cluster until this is set to false and applied."
  default     = true
}

variable "node_zones" {
  type        = list(string)
  description = "Zones (within var.region) for the system and inference node pools; empty means every zone GKE picks for the region."
  default     = []
}

variable "subnet_cidr" {
  type        = string
  description = "Primary range of the node subnet."
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range `pods` (VPC-native Pod IPs)."
  default     = "10.20.0.0/14"
}

variable "services_cidr" {
  type        = string
  description = "Secondary range `services` (ClusterIP Service IPs)."
  default     = "10.24.0.0/20"
}

variable "master_ipv4_cidr_block" {
  type        = string
  description = "/28 range for the private control plane; the webhook firewall rule admits it to the nodes."
  default     = "172.16.0.32/28"
}

variable "system_pool" {
  type = object({
    machine_type = string
    min_nodes    = number
    max_nodes    = number
    disk_size_gb = number
  })
  description = "System node pool (cert-manager, Knative, Kourier, KServe controller): machine type and total autoscaling bounds across zones."
  default = {
    machine_type = "e2-standard-4"
    min_nodes    = 1
    max_nodes    = 3
    disk_size_gb = 50
  }
}

variable "inference_pool" {
  type = object({
    machine_type = string
    min_nodes    = number
    max_nodes    = number
    disk_size_gb = number
  })
  description = "CPU inference node pool (transformer and predictor pods, label cloudmask.io/pool=inference): machine type and total autoscaling bounds."
  default = {
    machine_type = "c3-standard-8"
    min_nodes    = 1
    max_nodes    = 6
    disk_size_gb = 100
  }
}

variable "gpu_pool" {
  type = object({
    enabled               = bool
    machine_type          = string
    accelerator_type      = string
    accelerators_per_node = number
    min_nodes             = number
    max_nodes             = number
    disk_size_gb          = number
    zones                 = list(string)
  })
  description = "Optional GPU node pool (tainted nvidia.com/gpu=present:NoSchedule, label cloudmask.io/pool=gpu) for the prod overlay's GPU predictor. zones must offer accelerator_type; empty means the cluster's zones."
  default = {
    enabled               = false
    machine_type          = "g2-standard-8"
    accelerator_type      = "nvidia-l4"
    accelerators_per_node = 1
    min_nodes             = 0
    max_nodes             = 2
    disk_size_gb          = 100
    zones                 = []
  }
}

variable "registry_repository_id" {
  type        = string
  description = "Artifact Registry Docker repository that receives the predictor and transformer images."
  default     = "cloudmask"
}

variable "model_bucket_name" {
  type        = string
  description = "Globally unique name of the versioned model bucket; null means <project_id>-cloudmask-models."
  default     = null
}

variable "kserve_namespace" {
  type        = string
  description = "Namespace of the `cloudmask` InferenceService (kubectl apply -k kserve/overlays/...)."
  default     = "cloudmask"
}

variable "model_reader_ksa" {
  type        = string
  description = "Kubernetes service account the InferenceService runs as; KServe's storage initializer reads gs:// models with its Workload Identity."
  default     = "cloudmask-models"
}

variable "serving_domain" {
  type        = string
  description = "DNS domain for Knative routes (a wildcard record *.<domain> must point at output ingress_ip). Empty uses <ingress_ip>.sslip.io, which resolves without any DNS setup."
  default     = ""
}

variable "wif_pool_id" {
  type        = string
  description = "ID of the Workload Identity Federation pool for GitHub Actions."
  default     = "github-actions"
}

variable "wif_provider_id" {
  type        = string
  description = "ID of the GitHub OIDC provider inside the pool."
  default     = "github"
}

variable "labels" {
  type        = map(string)
  description = "Labels applied to every Google Cloud resource that takes them (cost attribution)."
  default = {
    app        = "cloudmask"
    managed-by = "terraform"
  }
}
