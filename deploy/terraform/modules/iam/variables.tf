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

variable "replica_region" {
  type = string
}

variable "s3_key_arn" {
  type = string
}

variable "sqs_key_arn" {
  type = string
}

variable "sns_key_arn" {
  type = string
}

variable "replica_key_arn" {
  type = string
}
