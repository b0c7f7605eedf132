# The CloudFormation templates' parameters (deploy/cloudformation/*.yaml), one variable each,
# with the same defaults and the same AllowedPattern / AllowedValues as validations.
# tools/tf-matches-cfn.py checks them against the templates.
#
# CloudFormation's ReplicaKeyArn parameter has no variable here: both regions are in one
# configuration, so the replica key's ARN is module.kms.replica_key_arn. primary_region has no
# parameter there (a stack's region is where it is deployed), and neither has managed_by: it
# is a stack tag there, given when the stack is deployed, and a default_tags value here.

variable "environment" {
  description = "Environment name in every resource name (dev, staging, prod)"
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z0-9]{1,8}$", var.environment))
    error_message = "environment must match ^[a-z0-9]{1,8}$."
  }
}

variable "suffix" {
  description = "Last part of every resource name"
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{1,12}$", var.suffix))
    error_message = "suffix must match ^[a-z0-9]{1,12}$."
  }
}

variable "managed_by" {
  description = "Value of the ManagedBy tag in the providers' default_tags (CloudFormation: a stack tag given at deploy time)"
  type        = string
  default     = "terraform"
}

variable "primary_region" {
  description = "Region of the primary buckets, queues, keys, topic and functions"
  type        = string
  default     = "us-east-1"
}

variable "replica_region" {
  description = "Region of the replica buckets and the replica key"
  type        = string
  default     = "us-west-2"
}

variable "alert_email" {
  description = "Address subscribed to the failure topic (confirm the e-mail AWS sends); empty for none"
  type        = string
  default     = ""
}

variable "artifact_bucket" {
  description = "Bucket holding the `harness package` zips; empty deploys no functions"
  type        = string
  default     = ""
}

variable "validator_zip_key" {
  description = "Key of the checksum validator's zip in artifact_bucket"
  type        = string
  default     = "checksum-validator/bootstrap.zip"
}

variable "notifier_zip_key" {
  description = "Key of the failure notifier's zip in artifact_bucket"
  type        = string
  default     = "failure-notifier/bootstrap.zip"
}

variable "architecture" {
  description = "Both functions' instruction set architecture"
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be one of arm64, x86_64."
  }
}

variable "batching_window" {
  description = "The mappings' MaximumBatchingWindowInSeconds"
  type        = number
  default     = 0
}

variable "failure_visibility_timeout" {
  description = "The failure queue's and the DLQs' visibility timeout (s): at least function_timeout"
  type        = number
  default     = 300
}

variable "function_timeout" {
  description = "Both functions' timeout (s)"
  type        = number
  default     = 60
}

variable "lag_budget_seconds" {
  description = "How long the validator waits for a replica before it alerts (s)"
  type        = string
  default     = "900"
}

variable "retry_base_seconds" {
  description = "The validator's first retry delay (s)"
  type        = string
  default     = "5"
}

variable "retry_max_seconds" {
  description = "The validator's longest retry delay (s)"
  type        = string
  default     = "300"
}

variable "validation_visibility_timeout" {
  description = "The validation queue's visibility timeout (s): at least function_timeout"
  type        = number
  default     = 300
}
