# CloudFormation: ValidatorFunction, NotifierFunction, their log groups and the five event
# source mappings, all under the DeployFunctions condition (ArtifactBucket not empty).

locals {
  deploy      = var.artifact_bucket != ""
  name_suffix = "${var.environment}-${var.suffix}"

  validator_name = "${var.project}-checksum-validator-${local.name_suffix}"
  notifier_name  = "${var.project}-failure-notifier-${local.name_suffix}"

  # The topology's [queues] batch_size and the redrive maxReceiveCount the validator reads.
  batch_size        = 5
  max_receive_count = "5"
}

resource "aws_cloudwatch_log_group" "validator" {
  #checkov:skip=CKV_AWS_158:No object content in the logs; CloudWatch Logs encrypts at rest.
  #checkov:skip=CKV_AWS_338:30 days covers the incident window; every failure also alerts.

  count = local.deploy ? 1 : 0

  name              = "/aws/lambda/${local.validator_name}"
  retention_in_days = 30
}

resource "aws_lambda_function" "validator" {
  #checkov:skip=CKV_AWS_116:SQS-triggered only: failed records go to the queues' redrive DLQs.
  #checkov:skip=CKV_AWS_117:Calls AWS APIs only; a VPC adds NAT or endpoints and protects nothing.
  #checkov:skip=CKV_AWS_115:Reserving fails in accounts at the default limit of 10; batches bound the load.
  #checkov:skip=CKV_AWS_173:No secrets (names, URLs, numbers); encrypted at rest by Lambda's own key.
  #checkov:skip=CKV_AWS_272:Zips built and hashed by harness package; no Signer profile in the seed.
  #checkov:skip=CKV_AWS_50:Each decision is logged in full; X-Ray adds cost, no decision data.

  count = local.deploy ? 1 : 0

  function_name = local.validator_name
  role          = var.validator_role_arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  memory_size   = 128
  timeout       = var.function_timeout
  s3_bucket     = var.artifact_bucket
  s3_key        = var.validator_zip_key

  environment {
    variables = {
      FAILURE_QUEUE_URL  = var.failure_queue_url
      LAG_BUDGET_SECONDS = var.lag_budget_seconds
      MAX_RECEIVE_COUNT  = local.max_receive_count
      REPLICA_AWS_REGION = var.replica_region
      REPLICA_BUCKET_MAP = join(",", var.replica_bucket_pairs)
      RETRY_BASE_SECONDS = var.retry_base_seconds
      RETRY_MAX_SECONDS  = var.retry_max_seconds
    }
  }

  # The role's inline policy comes in with var.validator_role_arn (module.iam's
  # validator_function_role_arn depends on it).
  depends_on = [aws_cloudwatch_log_group.validator]
}

resource "aws_lambda_event_source_mapping" "validator" {
  count = local.deploy ? 1 : 0

  event_source_arn                   = var.validation_queue_arn
  function_name                      = aws_lambda_function.validator[0].function_name
  batch_size                         = local.batch_size
  enabled                            = true
  maximum_batching_window_in_seconds = var.batching_window
  function_response_types            = ["ReportBatchItemFailures"]
}

resource "aws_cloudwatch_log_group" "notifier" {
  #checkov:skip=CKV_AWS_158:No object content in the logs; CloudWatch Logs encrypts at rest.
  #checkov:skip=CKV_AWS_338:30 days covers the incident window; every failure also alerts.

  count = local.deploy ? 1 : 0

  name              = "/aws/lambda/${local.notifier_name}"
  retention_in_days = 30
}

resource "aws_lambda_function" "notifier" {
  #checkov:skip=CKV_AWS_116:SQS-triggered only: failed records go to the queues' redrive DLQs.
  #checkov:skip=CKV_AWS_117:Calls AWS APIs only; a VPC adds NAT or endpoints and protects nothing.
  #checkov:skip=CKV_AWS_115:Reserving fails in accounts at the default limit of 10; batches bound the load.
  #checkov:skip=CKV_AWS_173:No secrets (names, URLs, numbers); encrypted at rest by Lambda's own key.
  #checkov:skip=CKV_AWS_272:Zips built and hashed by harness package; no Signer profile in the seed.
  #checkov:skip=CKV_AWS_50:Each decision is logged in full; X-Ray adds cost, no decision data.

  count = local.deploy ? 1 : 0

  function_name = local.notifier_name
  role          = var.notifier_role_arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  memory_size   = 128
  timeout       = var.function_timeout
  s3_bucket     = var.artifact_bucket
  s3_key        = var.notifier_zip_key

  environment {
    variables = {
      ALERT_LEDGER_BUCKET = var.alert_ledger_bucket
      PROJECT_NAME        = var.project
      SNS_TOPIC_ARN       = var.failure_topic_arn
    }
  }

  depends_on = [aws_cloudwatch_log_group.notifier]
}

resource "aws_lambda_event_source_mapping" "notifier" {
  for_each = local.deploy ? var.notifier_source_arns : {}

  event_source_arn                   = each.value
  function_name                      = aws_lambda_function.notifier[0].function_name
  batch_size                         = local.batch_size
  enabled                            = true
  maximum_batching_window_in_seconds = var.batching_window
  function_response_types            = ["ReportBatchItemFailures"]
}
