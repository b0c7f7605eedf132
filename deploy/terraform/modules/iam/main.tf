# CloudFormation: <Category>ReplicationRole(+Policy), ValidatorRole(+Policy) and
# NotifierRole(+Policy), each inline policy a resource of its own (AWS::IAM::RolePolicy) so
# a key policy can name a role and the role's policy the key without a dependency cycle.
# The policies name buckets and queues by ARN, as the templates do.

locals {
  name_suffix = "${var.environment}-${var.suffix}"

  primary_bucket = { for c in var.categories : c => "arn:aws:s3:::${var.project}-${c}-primary-${local.name_suffix}" }
  replica_bucket = { for c in var.categories : c => "arn:aws:s3:::${var.project}-${c}-replica-${local.name_suffix}" }

  queue_arn_prefix = "arn:aws:sqs:${var.primary_region}:${var.account_id}:${var.project}"
  log_group_prefix = "arn:aws:logs:${var.primary_region}:${var.account_id}:log-group:/aws/lambda/${var.project}"

  validator_log_group = "${local.log_group_prefix}-checksum-validator-${local.name_suffix}"
  notifier_log_group  = "${local.log_group_prefix}-failure-notifier-${local.name_suffix}"
}

# ---------------------------------------------------------------- replication roles

resource "aws_iam_role" "replication" {
  for_each = toset(var.categories)

  name = "s3-crr-role-${var.project}-${each.key}-primary-${local.name_suffix}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = {
          ArnLike      = { "aws:SourceArn" = [local.primary_bucket[each.key]] }
          StringEquals = { "aws:SourceAccount" = var.account_id }
        }
      },
    ]
  })
}

resource "aws_iam_role_policy" "replication" {
  for_each = aws_iam_role.replication

  name = "replication"
  role = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:GetReplicationConfiguration"]
        Resource = local.primary_bucket[each.key]
      },
      {
        Effect = "Allow"
        Action = [
          "s3:GetObjectVersion",
          "s3:GetObjectVersionAcl",
          "s3:GetObjectVersionForReplication",
          "s3:GetObjectVersionTagging",
        ]
        Resource = "${local.primary_bucket[each.key]}/*"
      },
      {
        Effect   = "Allow"
        Action   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
        Resource = ["${local.replica_bucket[each.key]}/*"]
      },
      {
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = var.s3_key_arn
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${var.primary_region}.amazonaws.com" }
          StringLike   = { "kms:EncryptionContext:aws:s3:arn" = "${local.primary_bucket[each.key]}/*" }
        }
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Encrypt", "kms:GenerateDataKey"]
        Resource = var.replica_key_arn
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${var.replica_region}.amazonaws.com" }
          StringLike   = { "kms:EncryptionContext:aws:s3:arn" = ["${local.replica_bucket[each.key]}/*"] }
        }
      },
    ]
  })
}

# ---------------------------------------------------------------- checksum validator

resource "aws_iam_role" "validator" {
  name = "${var.project}-checksum-validator-role-${local.name_suffix}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "lambda.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
      },
    ]
  })
}

resource "aws_iam_role_policy" "validator" {
  name = "checksum-validator"
  role = aws_iam_role.validator.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [local.validator_log_group, "${local.validator_log_group}:*"]
      },
      {
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:GetObjectVersion",
          "s3:GetObjectAttributes",
          "s3:GetObjectTagging",
          "s3:GetObjectVersionTagging",
        ]
        Resource = flatten([for c in var.categories : ["${local.primary_bucket[c]}/*", "${local.replica_bucket[c]}/*"]])
      },
      {
        Effect = "Allow"
        Action = [
          "s3:ListBucket",
          "s3:ListBucketVersions",
          "s3:GetReplicationConfiguration",
          "s3:GetBucketLocation",
          "s3:GetBucketTagging",
        ]
        Resource = flatten([for c in var.categories : [local.primary_bucket[c], local.replica_bucket[c]]])
      },
      {
        Effect = "Allow"
        Action = [
          "sqs:ReceiveMessage",
          "sqs:DeleteMessage",
          "sqs:GetQueueAttributes",
          "sqs:GetQueueUrl",
          "sqs:ChangeMessageVisibility",
          "sqs:SendMessage",
        ]
        Resource = "${local.queue_arn_prefix}-validation-queue-${local.name_suffix}"
      },
      {
        Effect   = "Allow"
        Action   = "sqs:SendMessage"
        Resource = "${local.queue_arn_prefix}-failure-queue-${local.name_suffix}"
      },
      {
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = var.sqs_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "sqs.${var.primary_region}.amazonaws.com" } }
      },
      {
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = var.s3_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "s3.${var.primary_region}.amazonaws.com" } }
      },
      {
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = var.replica_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "s3.${var.replica_region}.amazonaws.com" } }
      },
    ]
  })
}

# ---------------------------------------------------------------- failure notifier

resource "aws_iam_role" "notifier" {
  name = "${var.project}-failure-notifier-role-${local.name_suffix}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "lambda.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
      },
    ]
  })
}

resource "aws_iam_role_policy" "notifier" {
  name = "failure-notifier"
  role = aws_iam_role.notifier.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [local.notifier_log_group, "${local.notifier_log_group}:*"]
      },
      {
        Effect = "Allow"
        Action = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = [
          "${local.queue_arn_prefix}-failure-queue-${local.name_suffix}",
          "${local.queue_arn_prefix}-validation-dlq-${local.name_suffix}",
          "${local.queue_arn_prefix}-events-dlq-${local.name_suffix}",
          "${local.queue_arn_prefix}-failure-dlq-${local.name_suffix}",
        ]
      },
      {
        Effect   = "Allow"
        Action   = "sqs:SendMessage"
        Resource = "${local.queue_arn_prefix}-failure-dlq-${local.name_suffix}"
      },
      {
        Effect   = "Allow"
        Action   = "sns:Publish"
        Resource = "arn:aws:sns:${var.primary_region}:${var.account_id}:${var.project}-failure-topic-${local.name_suffix}"
      },
      {
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = "arn:aws:s3:::${var.project}-alert-ledger-${local.name_suffix}/alerts/*"
      },
      {
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = var.sqs_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "sqs.${var.primary_region}.amazonaws.com" } }
      },
      {
        Effect    = "Allow"
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = var.sns_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "sns.${var.primary_region}.amazonaws.com" } }
      },
    ]
  })
}
