output "validator_function_name" {
  description = "Empty when no functions are deployed"
  value       = local.deploy ? aws_lambda_function.validator[0].function_name : ""
}

output "notifier_function_name" {
  description = "Empty when no functions are deployed"
  value       = local.deploy ? aws_lambda_function.notifier[0].function_name : ""
}
