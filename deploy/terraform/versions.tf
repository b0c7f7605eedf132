terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.27 is the first 5.x with aws_cloudwatch_event_rule's `state` argument (5.26 added
      # the provided.al2023 Lambda runtime); `~> 5.27` still means any 5.x from there on.
      version = "~> 5.27"
    }
  }
}
