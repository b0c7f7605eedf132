# CloudFormation: UploadRule, whose one target (the validation queue) is inline there and an
# aws_cloudwatch_event_target here.

resource "aws_cloudwatch_event_rule" "upload" {
  name  = "${var.project}-s3-upload-trigger-${var.environment}-${var.suffix}"
  state = "ENABLED"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    resources     = var.primary_bucket_arns
  })
}

resource "aws_cloudwatch_event_target" "validation_queue" {
  rule      = aws_cloudwatch_event_rule.upload.name
  target_id = "SendToValidationQueue"
  arn       = var.validation_queue_arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = var.events_dlq_arn
  }
}
