output "primary_bucket_names" {
  description = "Category => primary bucket name"
  value       = { for k, b in aws_s3_bucket.primary : k => b.id }
}

output "primary_bucket_arns" {
  description = "Category => primary bucket ARN"
  value       = { for k, b in aws_s3_bucket.primary : k => b.arn }
}

output "replica_bucket_names" {
  description = "Category => replica bucket name"
  value       = { for k, b in aws_s3_bucket.replica : k => b.id }
}

output "alert_ledger_bucket_name" {
  value = aws_s3_bucket.alert_ledger.id
}
