# CloudFormation: FailureTopic and AlertEmailSubscription (condition HasAlertEmail).

resource "aws_sns_topic" "failure" {
  name              = "${var.project}-failure-topic-${var.environment}-${var.suffix}"
  kms_master_key_id = var.sns_key_id
}

# AWS e-mails the address a confirmation link: the subscription stays pending until it is
# followed.
resource "aws_sns_topic_subscription" "alert_email" {
  count = var.alert_email != "" ? 1 : 0

  topic_arn = aws_sns_topic.failure.arn
  protocol  = "email"
  endpoint  = var.alert_email
}
