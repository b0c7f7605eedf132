# CloudFormation: S3Key, SqsKey, SnsKey (+Alias) in the primary stack, ReplicaKey (+Alias) in
# the replica one. A key policy may only name principals that exist, so the replica key names
# no replication role (the templates' choice: the account-root statement delegates to IAM).

locals {
  name_suffix  = "${var.environment}-${var.suffix}"
  account_root = "arn:aws:iam::${var.account_id}:root"
}

resource "aws_kms_key" "s3" {
  provider = aws.primary

  description             = "SSE-KMS key of primary objects"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountRoot"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "Roles"
        Effect    = "Allow"
        Principal = { AWS = concat([var.validator_role_arn], [for c in var.categories : var.replication_role_arns[c]]) }
        Action    = ["kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "kms:ViaService" = "s3.${var.primary_region}.amazonaws.com" } }
      },
    ]
  })
}

resource "aws_kms_alias" "s3" {
  provider = aws.primary

  name          = "alias/${var.project}-s3-key-${local.name_suffix}"
  target_key_id = aws_kms_key.s3.key_id
}

resource "aws_kms_key" "sqs" {
  provider = aws.primary

  description             = "SQS encryption key"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountRoot"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "Roles"
        Effect    = "Allow"
        Principal = { AWS = [var.validator_role_arn, var.notifier_role_arn] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
      },
      {
        # EventBridge delivers to the encrypted validation queue and events DLQ.
        Sid       = "EventBridgeToEncryptedQueue"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
      },
    ]
  })
}

resource "aws_kms_alias" "sqs" {
  provider = aws.primary

  name          = "alias/${var.project}-sqs-key-${local.name_suffix}"
  target_key_id = aws_kms_key.sqs.key_id
}

resource "aws_kms_key" "sns" {
  provider = aws.primary

  description             = "SNS encryption key"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountRoot"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "Roles"
        Effect    = "Allow"
        Principal = { AWS = [var.notifier_role_arn] }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
      },
      {
        # The DLQ depth alarms publish to the encrypted failure topic.
        Sid       = "CloudWatchAlarmsToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
      },
    ]
  })
}

resource "aws_kms_alias" "sns" {
  provider = aws.primary

  name          = "alias/${var.project}-sns-key-${local.name_suffix}"
  target_key_id = aws_kms_key.sns.key_id
}

resource "aws_kms_key" "replica" {
  provider = aws.replica

  description             = "SSE-KMS replica key (replica region)"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountRoot"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "replica" {
  provider = aws.replica

  name          = "alias/${var.project}-replica-key-${local.name_suffix}"
  target_key_id = aws_kms_key.replica.key_id
}
