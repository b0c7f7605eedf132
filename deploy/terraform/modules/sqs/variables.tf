variable "project" {
  type = string
}

variable "environment" {
  type = string
}

variable "suffix" {
  type = string
}

variable "sqs_key_id" {
  description = "The SQS key every queue is encrypted with"
  type        = string
}

variable "validation_visibility_timeout" {
  type = number
}

variable "failure_visibility_timeout" {
  type = number
}

variable "upload_rule_arn" {
  description = "The EventBridge rule that sends to the validation queue and, failing that, the events DLQ"
  type        = string
}

variable "alarm_topic_arn" {
  description = "The topic the DLQ depth alarms notify"
  type        = string
}
