output "validation_queue_arn" {
  value = aws_sqs_queue.validation.arn
}

output "validation_queue_url" {
  value = aws_sqs_queue.validation.url
}

output "validation_dlq_arn" {
  value = aws_sqs_queue.validation_dlq.arn
}

output "validation_dlq_url" {
  value = aws_sqs_queue.validation_dlq.url
}

output "failure_queue_arn" {
  value = aws_sqs_queue.failure.arn
}

output "failure_queue_url" {
  value = aws_sqs_queue.failure.url
}

output "failure_dlq_arn" {
  value = aws_sqs_queue.failure_dlq.arn
}

output "failure_dlq_url" {
  value = aws_sqs_queue.failure_dlq.url
}

output "events_dlq_arn" {
  value = aws_sqs_queue.events_dlq.arn
}

output "events_dlq_url" {
  value = aws_sqs_queue.events_dlq.url
}
