# CloudFormation: ValidationQueue, ValidationDlq, FailureQueue, FailureDlq, EventsDlq, the
# queue policies letting the upload rule send to the validation queue and the events DLQ,
# and a depth alarm on each DLQ.

locals {
  name_suffix = "${var.environment}-${var.suffix}"

  # The topology's [queues] settings.
  max_receive_count          = 5
  retention_seconds          = 345600
  dlq_retention_seconds      = 1209600
  max_message_size           = 262144
  kms_data_key_reuse_seconds = 300
}

resource "aws_sqs_queue" "validation_dlq" {
  name                              = "${var.project}-validation-dlq-${local.name_suffix}"
  visibility_timeout_seconds        = var.failure_visibility_timeout
  message_retention_seconds         = local.dlq_retention_seconds
  kms_master_key_id                 = var.sqs_key_id
  kms_data_key_reuse_period_seconds = local.kms_data_key_reuse_seconds
}

resource "aws_sqs_queue" "validation" {
  name                              = "${var.project}-validation-queue-${local.name_suffix}"
  delay_seconds                     = 0
  max_message_size                  = local.max_message_size
  message_retention_seconds         = local.retention_seconds
  visibility_timeout_seconds        = var.validation_visibility_timeout
  kms_master_key_id                 = var.sqs_key_id
  kms_data_key_reuse_period_seconds = local.kms_data_key_reuse_seconds
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.validation_dlq.arn
    maxReceiveCount     = local.max_receive_count
  })
}

resource "aws_sqs_queue" "failure_dlq" {
  name                              = "${var.project}-failure-dlq-${local.name_suffix}"
  visibility_timeout_seconds        = var.failure_visibility_timeout
  message_retention_seconds         = local.dlq_retention_seconds
  kms_master_key_id                 = var.sqs_key_id
  kms_data_key_reuse_period_seconds = local.kms_data_key_reuse_seconds
}

resource "aws_sqs_queue" "failure" {
  name                              = "${var.project}-failure-queue-${local.name_suffix}"
  delay_seconds                     = 0
  max_message_size                  = local.max_message_size
  message_retention_seconds         = local.retention_seconds
  visibility_timeout_seconds        = var.failure_visibility_timeout
  kms_master_key_id                 = var.sqs_key_id
  kms_data_key_reuse_period_seconds = local.kms_data_key_reuse_seconds
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.failure_dlq.arn
    maxReceiveCount     = local.max_receive_count
  })
}

# Where the upload rule puts events it could not deliver to the validation queue.
resource "aws_sqs_queue" "events_dlq" {
  name                              = "${var.project}-events-dlq-${local.name_suffix}"
  visibility_timeout_seconds        = var.failure_visibility_timeout
  message_retention_seconds         = local.dlq_retention_seconds
  kms_master_key_id                 = var.sqs_key_id
  kms_data_key_reuse_period_seconds = local.kms_data_key_reuse_seconds
}

resource "aws_sqs_queue_policy" "validation" {
  queue_url = aws_sqs_queue.validation.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.validation.arn
        Condition = { ArnEquals = { "aws:SourceArn" = var.upload_rule_arn } }
      },
    ]
  })
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.events_dlq.arn
        Condition = { ArnEquals = { "aws:SourceArn" = var.upload_rule_arn } }
      },
    ]
  })
}

locals {
  dlqs = {
    "validation-dlq" = aws_sqs_queue.validation_dlq
    "events-dlq"     = aws_sqs_queue.events_dlq
    "failure-dlq"    = aws_sqs_queue.failure_dlq
  }
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each = local.dlqs

  alarm_name          = "${each.value.name}-not-empty"
  alarm_description   = "Messages in the ${each.key} queue: records the system could not process"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
}
