output "s3_key_arn" {
  value = aws_kms_key.s3.arn
}

output "sqs_key_arn" {
  value = aws_kms_key.sqs.arn
}

output "sqs_key_id" {
  value = aws_kms_key.sqs.key_id
}

output "sns_key_arn" {
  value = aws_kms_key.sns.arn
}

output "sns_key_id" {
  value = aws_kms_key.sns.key_id
}

output "replica_key_arn" {
  value = aws_kms_key.replica.arn
}
