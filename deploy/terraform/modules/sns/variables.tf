variable "project" {
  type = string
}

variable "environment" {
  type = string
}

variable "suffix" {
  type = string
}

variable "sns_key_id" {
  type = string
}

variable "alert_email" {
  description = "Address subscribed to the topic; empty for none"
  type        = string
}
