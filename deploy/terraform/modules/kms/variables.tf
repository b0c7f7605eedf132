variable "project" {
  type = string
}

variable "environment" {
  type = string
}

variable "suffix" {
  type = string
}

variable "categories" {
  type = list(string)
}

variable "account_id" {
  type = string
}

variable "primary_region" {
  type = string
}

variable "validator_role_arn" {
  type = string
}

variable "notifier_role_arn" {
  type = string
}

variable "replication_role_arns" {
  description = "Category => replication role ARN"
  type        = map(string)
}
