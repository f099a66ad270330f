# The upload bucket. Browsers PUT into it with the presigned URLs the gate
# returns; nothing here is ever public.
resource "aws_s3_bucket" "uploads" {
  #checkov:skip=CKV_AWS_18:Server access logs need a second bucket and cost per request; CloudTrail data events are the better audit trail and are an account-level choice.
  #checkov:skip=CKV_AWS_144:Cross-region replication of short-lived, unprocessed uploads doubles storage for data that expires in days.
  #checkov:skip=CKV_AWS_21:Versioning adds nothing: the bucket policy forces If-None-Match, so an object is never overwritten, and lifecycle deletes leftovers.
  #checkov:skip=CKV2_AWS_62:Event notifications exist with charge = upload (settle.tf, counted); in grant mode they belong to the downstream processor.
  #checkov:skip=CKV_AWS_145:SSE-S3 by default keeps presigned PUTs free of KMS permissions and request costs; set kms_key_arn for SSE-KMS.
  bucket_prefix = "${var.name}-uploads-"
  force_destroy = var.bucket_force_destroy

  tags = var.tags
}

resource "aws_s3_bucket_public_access_block" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket owner owns every object whoever uploaded it.
resource "aws_s3_bucket_ownership_controls" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests (and cost) by ~99% under SSE-KMS.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# A browser PUT of a presigned URL is cross-origin: allow PUT, every header
# the presigner signs (content-disposition, content-type, if-none-match, and
# x-amz-checksum-sha256 among x-amz-*), and expose
# ETag so the page can confirm what it stored.
resource "aws_s3_bucket_cors_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  cors_rule {
    allowed_methods = ["PUT"]
    allowed_origins = var.cors_allowed_origins
    allowed_headers = ["content-disposition", "content-type", "if-none-match", "x-amz-*"]
    expose_headers  = ["ETag"]
    max_age_seconds = 3600
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  rule {
    id     = "expire-unprocessed-uploads"
    status = "Enabled"

    filter {
      prefix = var.key_prefix
    }

    expiration {
      days = var.upload_expiration_days
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    # Whole bucket, written as an explicit empty prefix: S3 echoes it back
    # that way, and the provider waits until what it reads equals what it
    # wrote.
    filter {
      prefix = ""
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.uploads.arn,
      "${aws_s3_bucket.uploads.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # A presigned URL can be replayed until it expires. If-None-Match: * makes
  # a second PUT fail, but only if the client sends it; this deny makes the
  # header mandatory, so a URL stays single-use even when a client drops it.
  statement {
    sid       = "DenyPutWithoutIfNoneMatch"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = [local.upload_objects_arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["true"]
    }
  }
}

resource "aws_s3_bucket_policy" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  policy = data.aws_iam_policy_document.bucket.json

  # S3 rejects a policy while the public access block is being written.
  depends_on = [aws_s3_bucket_public_access_block.uploads]
}
