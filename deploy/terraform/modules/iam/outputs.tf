output "replication_role_arns" {
  description = "Category => replication role ARN"
  value       = { for k, r in aws_iam_role.replication : k => r.arn }
}

output "validator_role_arn" {
  value = aws_iam_role.validator.arn
}

output "notifier_role_arn" {
  value = aws_iam_role.notifier.arn
}

# The function roles once their inline policies are attached: what the functions run with.
# CloudFormation: the functions' DependsOn ValidatorPolicy / NotifierPolicy.
output "validator_function_role_arn" {
  value      = aws_iam_role.validator.arn
  depends_on = [aws_iam_role_policy.validator]
}

output "notifier_function_role_arn" {
  value      = aws_iam_role.notifier.arn
  depends_on = [aws_iam_role_policy.notifier]
}
