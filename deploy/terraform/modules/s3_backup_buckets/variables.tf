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
  description = "The backup categories: one primary and one replica bucket each"
  type        = list(string)
}

variable "tags" {
  description = "The buckets' own tags (the templates' bucket Tags); the backup buckets add Category. Stack tags come from the providers' default_tags."
  type        = map(string)
}

variable "replication_role_arns" {
  description = "Category => ARN of the role S3 replicates that category's primary bucket with"
  type        = map(string)
}

variable "replica_key_arn" {
  description = "The replica region's key: replicas of SSE-KMS objects are encrypted with it"
  type        = string
}
