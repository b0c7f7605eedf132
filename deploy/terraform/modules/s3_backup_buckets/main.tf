# CloudFormation: <Category>ReplicaBucket(+Policy) in the replica stack, <Category>PrimaryBucket
# (+Policy) and AlertLedgerBucket(+Policy) in the primary one. CloudFormation sets versioning,
# encryption, public access block, lifecycle, replication and notifications on the bucket
# itself; provider v5 has a resource for each.

locals {
  name_suffix = "${var.environment}-${var.suffix}"
}

# ---------------------------------------------------------------- replica region

resource "aws_s3_bucket" "replica" {
  #checkov:skip=CKV_AWS_18:Audit trail is CloudTrail data events; access logs need a log bucket per region.
  #checkov:skip=CKV_AWS_145:SSE-S3 by default as in the seed; SSE-KMS uploads use the S3 key.
  #checkov:skip=CKV2_AWS_62:Replicas are written by replication; primaries' events drive validation.

  provider = aws.replica
  for_each = toset(var.categories)

  bucket = "${var.project}-${each.key}-replica-${local.name_suffix}"
  tags   = merge(var.tags, { Category = each.key })

  # CloudFormation: DeletionPolicy and UpdateReplacePolicy Retain.
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "replica" {
  provider = aws.replica
  for_each = aws_s3_bucket.replica

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "replica" {
  provider = aws.replica
  for_each = aws_s3_bucket.replica

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "replica" {
  provider = aws.replica
  for_each = aws_s3_bucket.replica

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "replica" {
  provider = aws.replica
  for_each = aws_s3_bucket.replica

  bucket = each.value.id
  rule {
    id     = "${each.key}-lifecycle-rule"
    status = "Enabled"
    filter {
      prefix = ""
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    noncurrent_version_expiration {
      noncurrent_days = 365
    }
    noncurrent_version_transition {
      noncurrent_days = 30
      storage_class   = "GLACIER_IR"
    }
  }

  # Noncurrent-version rules need versioning on.
  depends_on = [aws_s3_bucket_versioning.replica]
}

resource "aws_s3_bucket_policy" "replica" {
  provider = aws.replica
  for_each = aws_s3_bucket.replica

  bucket = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [each.value.arn, "${each.value.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

# ---------------------------------------------------------------- primary region

resource "aws_s3_bucket" "primary" {
  #checkov:skip=CKV_AWS_18:Audit trail is CloudTrail data events; access logs need a log bucket per region.
  #checkov:skip=CKV_AWS_145:SSE-S3 by default as in the seed; SSE-KMS uploads use the S3 key.

  provider = aws.primary
  for_each = toset(var.categories)

  bucket = "${var.project}-${each.key}-primary-${local.name_suffix}"
  tags   = merge(var.tags, { Category = each.key })

  # CloudFormation: DeletionPolicy and UpdateReplacePolicy Retain.
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "primary" {
  provider = aws.primary
  for_each = aws_s3_bucket.primary

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "primary" {
  provider = aws.primary
  for_each = aws_s3_bucket.primary

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "primary" {
  provider = aws.primary
  for_each = aws_s3_bucket.primary

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "primary" {
  provider = aws.primary
  for_each = aws_s3_bucket.primary

  bucket = each.value.id
  rule {
    id     = "${each.key}-lifecycle-rule"
    status = "Enabled"
    filter {
      prefix = ""
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    noncurrent_version_expiration {
      noncurrent_days = 365
    }
    noncurrent_version_transition {
      noncurrent_days = 30
      storage_class   = "GLACIER_IR"
    }
  }

  depends_on = [aws_s3_bucket_versioning.primary]
}

# Cross-region replication of every key to the category's replica bucket, delete markers
# included; SSE-KMS objects too, re-encrypted with the replica key.
resource "aws_s3_bucket_replication_configuration" "primary" {
  provider = aws.primary
  for_each = aws_s3_bucket.primary

  bucket = each.value.id
  role   = var.replication_role_arns[each.key]

  rule {
    id       = "${each.key}-replication-rule"
    priority = 1
    status   = "Enabled"
    filter {
      prefix = ""
    }
    delete_marker_replication {
      status = "Enabled"
    }
    destination {
      bucket = aws_s3_bucket.replica[each.key].arn
      encryption_configuration {
        replica_kms_key_id = var.replica_key_arn
      }
    }
    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }
  }

  # S3 refuses a replication configuration until both ends are versioned.
  depends_on = [aws_s3_bucket_versioning.primary, aws_s3_bucket_versioning.replica]
}

resource "aws_s3_bucket_notification" "primary" {
  provider = aws.primary
  for_each = aws_s3_bucket.primary

  bucket      = each.value.id
  eventbridge = true
}

resource "aws_s3_bucket_policy" "primary" {
  provider = aws.primary
  for_each = aws_s3_bucket.primary

  bucket = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [each.value.arn, "${each.value.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

# The notifier's alert ledger: de-duplication markers under alerts/, expired after a day.
# Not versioned, no Retain in CloudFormation, so no prevent_destroy here.
resource "aws_s3_bucket" "alert_ledger" {
  #checkov:skip=CKV_AWS_18:Audit trail is CloudTrail data events; access logs need a log bucket per region.
  #checkov:skip=CKV_AWS_21:One-day idempotency claims, not backups; versions would outlive their expiry.
  #checkov:skip=CKV_AWS_145:SSE-S3 by default as in the seed; SSE-KMS uploads use the S3 key.
  #checkov:skip=CKV2_AWS_62:The notifier's bookkeeping; nothing consumes its events.
  #checkov:skip=CKV_AWS_144:One-day idempotency claims: nothing to recover in another region.

  provider = aws.primary

  bucket = "${var.project}-alert-ledger-${local.name_suffix}"
  tags   = var.tags
}

resource "aws_s3_bucket_server_side_encryption_configuration" "alert_ledger" {
  provider = aws.primary

  bucket = aws_s3_bucket.alert_ledger.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "alert_ledger" {
  provider = aws.primary

  bucket                  = aws_s3_bucket.alert_ledger.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "alert_ledger" {
  #checkov:skip=CKV_AWS_300:Only alerts/ is written, and its rule aborts incomplete uploads after a day.
  provider = aws.primary

  bucket = aws_s3_bucket.alert_ledger.id
  rule {
    id     = "expire-ledger-entries"
    status = "Enabled"
    filter {
      prefix = "alerts/"
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
    expiration {
      days = 1
    }
  }
}

resource "aws_s3_bucket_policy" "alert_ledger" {
  provider = aws.primary

  bucket = aws_s3_bucket.alert_ledger.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.alert_ledger.arn, "${aws_s3_bucket.alert_ledger.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
