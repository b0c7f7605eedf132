variable "project" {
  type = string
}

variable "environment" {
  type = string
}

variable "suffix" {
  type = string
}

variable "artifact_bucket" {
  description = "Bucket holding the `harness package` zips; empty deploys nothing of this module"
  type        = string
}

variable "validator_zip_key" {
  type = string
}

variable "notifier_zip_key" {
  type = string
}

variable "architecture" {
  type = string
}

variable "function_timeout" {
  type = number
}

variable "batching_window" {
  type = number
}

variable "lag_budget_seconds" {
  type = string
}

variable "retry_base_seconds" {
  type = string
}

variable "retry_max_seconds" {
  type = string
}

variable "replica_region" {
  type = string
}

variable "replica_bucket_pairs" {
  description = "\"<primary bucket>=<replica bucket>\" per category, in category order"
  type        = list(string)
}

variable "alert_ledger_bucket" {
  type = string
}

variable "validator_role_arn" {
  type = string
}

variable "notifier_role_arn" {
  type = string
}

variable "failure_queue_url" {
  type = string
}

variable "failure_topic_arn" {
  type = string
}

variable "validation_queue_arn" {
  description = "The validator's event source"
  type        = string
}

variable "notifier_source_arns" {
  description = "The notifier's event sources: the failure queue and the three DLQs"
  type        = map(string)
}
