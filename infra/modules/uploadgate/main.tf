locals {
  # Every setting the gate reads in Lambda (infra/test/test_agreement.py
  # checks this map against the settings the function reads, as the Lambda
  # crate's manifest example prints them). Fixed values are the ones this
  # topology implies: DynamoDB store, S3 target, client IP from the
  # CloudFront-Viewer-Address header (requestContext.http.sourceIp is a
  # CloudFront edge address behind the distribution), JSON log lines and
  # CloudWatch Embedded Metric Format lines on stdout (CloudWatch Logs turns
  # those into metrics; no cloudwatch:PutMetricData is needed). The last two
  # are the Lambda's own defaults too; setting them makes the environment
  # say what the function does.
  environment = {
    UPLOADGATE_STORE            = "dynamodb"
    UPLOADGATE_TABLE            = aws_dynamodb_table.limits.name
    UPLOADGATE_DENIAL_TTL       = var.denial_ttl
    UPLOADGATE_BUCKET           = aws_s3_bucket.uploads.id
    UPLOADGATE_TARGET           = "s3"
    UPLOADGATE_CLIENT_IP        = "cloudfront"
    UPLOADGATE_LIMITS           = var.limits
    UPLOADGATE_MAX_OBJECT_BYTES = tostring(var.max_object_bytes)
    UPLOADGATE_CONTENT_TYPES    = join(",", var.content_types)
    UPLOADGATE_URL_TTL          = var.url_ttl
    UPLOADGATE_KEY_PREFIX       = var.key_prefix
    UPLOADGATE_IDENTITY         = var.identity
    UPLOADGATE_IDENTITY_HEADER  = var.identity_header
    UPLOADGATE_CORS_ORIGINS     = join(",", var.cors_allowed_origins)
    UPLOADGATE_FAIL_OPEN        = tostring(var.fail_open)
    UPLOADGATE_LOG              = var.log_filter
    UPLOADGATE_LOG_FORMAT       = "json"
    UPLOADGATE_METRICS          = "emf"
  }

  # Objects the gate may presign a PUT for; everything that is scoped to the
  # upload prefix (IAM grant, If-None-Match deny, lifecycle) uses this.
  upload_objects_arn = "${aws_s3_bucket.uploads.arn}/${var.key_prefix}*"

  create_certificate = var.custom_domain != null && try(var.custom_domain.acm_certificate_arn, null) == null
  certificate_arn    = var.custom_domain == null ? null : (local.create_certificate ? aws_acm_certificate_validation.this[0].certificate_arn : var.custom_domain.acm_certificate_arn)
}
