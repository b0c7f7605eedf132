output "upload_rule_arn" {
  value = aws_cloudwatch_event_rule.upload.arn
}
