# The two stacks' outputs (deploy/cloudformation/*.yaml), snake_cased.

# Replica stack.
output "documents_replica_bucket" {
  value = module.s3_backup_buckets.replica_bucket_names["documents"]
}

output "media_replica_bucket" {
  value = module.s3_backup_buckets.replica_bucket_names["media"]
}

output "database_replica_bucket" {
  value = module.s3_backup_buckets.replica_bucket_names["database"]
}

output "replica_key_arn" {
  description = "The replica region's key (CloudFormation passes it to the primary stack as ReplicaKeyArn)"
  value       = module.kms.replica_key_arn
}

# Primary stack.
output "documents_primary_bucket" {
  value = module.s3_backup_buckets.primary_bucket_names["documents"]
}

output "media_primary_bucket" {
  value = module.s3_backup_buckets.primary_bucket_names["media"]
}

output "database_primary_bucket" {
  value = module.s3_backup_buckets.primary_bucket_names["database"]
}

output "alert_ledger_bucket" {
  value = module.s3_backup_buckets.alert_ledger_bucket_name
}

output "s3_key_arn" {
  value = module.kms.s3_key_arn
}

output "sqs_key_arn" {
  value = module.kms.sqs_key_arn
}

output "sns_key_arn" {
  value = module.kms.sns_key_arn
}

output "validation_queue_arn" {
  value = module.sqs.validation_queue_arn
}

output "validation_queue_url" {
  value = module.sqs.validation_queue_url
}

output "validation_dlq_arn" {
  value = module.sqs.validation_dlq_arn
}

output "validation_dlq_url" {
  value = module.sqs.validation_dlq_url
}

output "failure_queue_arn" {
  value = module.sqs.failure_queue_arn
}

output "failure_queue_url" {
  value = module.sqs.failure_queue_url
}

output "failure_dlq_arn" {
  value = module.sqs.failure_dlq_arn
}

output "failure_dlq_url" {
  value = module.sqs.failure_dlq_url
}

output "events_dlq_arn" {
  value = module.sqs.events_dlq_arn
}

output "events_dlq_url" {
  value = module.sqs.events_dlq_url
}

output "failure_topic_arn" {
  value = module.sns.failure_topic_arn
}

output "upload_rule_arn" {
  value = module.eventbridge.upload_rule_arn
}

output "validator_role_arn" {
  value = module.iam.validator_role_arn
}

output "notifier_role_arn" {
  value = module.iam.notifier_role_arn
}

output "validator_function_name" {
  value = module.lambda_functions.validator_function_name
}

output "notifier_function_name" {
  value = module.lambda_functions.notifier_function_name
}
