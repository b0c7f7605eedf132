output "failure_topic_arn" {
  value = aws_sns_topic.failure.arn
}
