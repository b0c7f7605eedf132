# The autobackup topology in Terraform: the same resources, names and settings as the two
# CloudFormation stacks in deploy/cloudformation/ (generated from fixtures/topology.toml), in
# one configuration with a provider per region instead of a stack per region.
# tools/tf-matches-cfn.py compares the two, resource by resource.

# The stacks' tags: CloudFormation gives a stack's tags to every resource in it that takes
# tags. Here the providers' default_tags do the same job.
provider "aws" {
  alias  = "primary"
  region = var.primary_region

  default_tags {
    tags = local.stack_tags
  }
}

provider "aws" {
  alias  = "replica"
  region = var.replica_region

  default_tags {
    tags = local.stack_tags
  }
}

data "aws_caller_identity" "current" {
  provider = aws.primary
}

locals {
  project    = "autobackup"
  categories = ["documents", "media", "database"]

  # Every resource's tags (the providers' default_tags).
  stack_tags = {
    Project     = local.project
    Environment = var.environment
    ManagedBy   = var.managed_by
  }

  # The tags the templates set on the buckets themselves. The backup buckets add Category.
  bucket_tags = {
    Project     = local.project
    Environment = var.environment
  }
}

# Primary, replica and alert-ledger buckets: versioning, encryption, public access block,
# lifecycle, TLS-only policies, replication (primaries) and EventBridge notifications.
module "s3_backup_buckets" {
  source = "./modules/s3_backup_buckets"
  providers = {
    aws.primary = aws.primary
    aws.replica = aws.replica
  }

  project               = local.project
  environment           = var.environment
  suffix                = var.suffix
  categories            = local.categories
  tags                  = local.bucket_tags
  replication_role_arns = module.iam.replication_role_arns
  replica_key_arn       = module.kms.replica_key_arn
}

# The S3, SQS and SNS keys (primary region) and the replica key (replica region).
module "kms" {
  source = "./modules/kms"
  providers = {
    aws.primary = aws.primary
    aws.replica = aws.replica
  }

  project               = local.project
  environment           = var.environment
  suffix                = var.suffix
  categories            = local.categories
  account_id            = data.aws_caller_identity.current.account_id
  primary_region        = var.primary_region
  validator_role_arn    = module.iam.validator_role_arn
  notifier_role_arn     = module.iam.notifier_role_arn
  replication_role_arns = module.iam.replication_role_arns
}

# The replication roles and the two function roles, each with its inline policy.
module "iam" {
  source    = "./modules/iam"
  providers = { aws = aws.primary }

  project         = local.project
  environment     = var.environment
  suffix          = var.suffix
  categories      = local.categories
  account_id      = data.aws_caller_identity.current.account_id
  primary_region  = var.primary_region
  replica_region  = var.replica_region
  s3_key_arn      = module.kms.s3_key_arn
  sqs_key_arn     = module.kms.sqs_key_arn
  sns_key_arn     = module.kms.sns_key_arn
  replica_key_arn = module.kms.replica_key_arn
}

# The validation and failure queues with their DLQs, the events DLQ, the queue policies and
# the DLQ depth alarms.
module "sqs" {
  source    = "./modules/sqs"
  providers = { aws = aws.primary }

  project                       = local.project
  environment                   = var.environment
  suffix                        = var.suffix
  sqs_key_id                    = module.kms.sqs_key_id
  validation_visibility_timeout = var.validation_visibility_timeout
  failure_visibility_timeout    = var.failure_visibility_timeout
  upload_rule_arn               = module.eventbridge.upload_rule_arn
  alarm_topic_arn               = module.sns.failure_topic_arn
}

# The failure topic and the optional e-mail subscription.
module "sns" {
  source    = "./modules/sns"
  providers = { aws = aws.primary }

  project     = local.project
  environment = var.environment
  suffix      = var.suffix
  sns_key_id  = module.kms.sns_key_id
  alert_email = var.alert_email
}

# The upload rule: Object Created on the primaries to the validation queue.
module "eventbridge" {
  source    = "./modules/eventbridge"
  providers = { aws = aws.primary }

  project              = local.project
  environment          = var.environment
  suffix               = var.suffix
  primary_bucket_arns  = [for c in local.categories : module.s3_backup_buckets.primary_bucket_arns[c]]
  validation_queue_arn = module.sqs.validation_queue_arn
  events_dlq_arn       = module.sqs.events_dlq_arn
}

# The two functions, their log groups and their event source mappings: only with an
# artifact bucket (CloudFormation's DeployFunctions condition).
module "lambda_functions" {
  source    = "./modules/lambda_functions"
  providers = { aws = aws.primary }

  project            = local.project
  environment        = var.environment
  suffix             = var.suffix
  artifact_bucket    = var.artifact_bucket
  validator_zip_key  = var.validator_zip_key
  notifier_zip_key   = var.notifier_zip_key
  architecture       = var.architecture
  function_timeout   = var.function_timeout
  batching_window    = var.batching_window
  lag_budget_seconds = var.lag_budget_seconds
  retry_base_seconds = var.retry_base_seconds
  retry_max_seconds  = var.retry_max_seconds
  replica_region     = var.replica_region
  replica_bucket_pairs = [
    for c in local.categories :
    "${module.s3_backup_buckets.primary_bucket_names[c]}=${module.s3_backup_buckets.replica_bucket_names[c]}"
  ]
  alert_ledger_bucket  = module.s3_backup_buckets.alert_ledger_bucket_name
  validator_role_arn   = module.iam.validator_function_role_arn
  notifier_role_arn    = module.iam.notifier_function_role_arn
  failure_queue_url    = module.sqs.failure_queue_url
  failure_topic_arn    = module.sns.failure_topic_arn
  validation_queue_arn = module.sqs.validation_queue_arn
  notifier_source_arns = {
    "failure-queue"  = module.sqs.failure_queue_arn
    "validation-dlq" = module.sqs.validation_dlq_arn
    "events-dlq"     = module.sqs.events_dlq_arn
    "failure-dlq"    = module.sqs.failure_dlq_arn
  }
}
