variable "project" {
  type = string
}

variable "environment" {
  type = string
}

variable "suffix" {
  type = string
}

variable "primary_bucket_arns" {
  description = "The buckets whose Object Created events the rule matches"
  type        = list(string)
}

variable "validation_queue_arn" {
  type = string
}

variable "events_dlq_arn" {
  description = "Where EventBridge puts events it could not deliver"
  type        = string
}
