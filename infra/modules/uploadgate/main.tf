locals {
  # Every setting the gate reads in Lambda, each once: infra/test/
  # test_agreement.py checks the keys of this map against the settings the
  # function reads, as the Lambda crate's manifest example prints them.
  # A setting that does not apply to this deployment is null and is not
  # sent (local.environment drops it): the gate reads an empty variable as
  # a value, and refuses token settings outside identity = "jwt".
  #
  # Fixed values are the ones this topology implies: DynamoDB store, S3
  # target, client IP from the CloudFront-Viewer-Address header
  # (requestContext.http.sourceIp is a CloudFront edge address behind the
  # distribution), JSON log lines and CloudWatch Embedded Metric Format
  # lines on stdout (CloudWatch Logs turns those into metrics; no
  # cloudwatch:PutMetricData is needed). The last two are the Lambda's own
  # defaults too; setting them makes the environment say what the function
  # does.
  jwt = var.identity == "jwt"
  settings = {
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
    UPLOADGATE_IDENTITY_HEADER  = var.identity == "header" ? var.identity_header : null
    UPLOADGATE_JWT_ISSUER       = local.jwt ? var.jwt_issuer : null
    UPLOADGATE_JWT_AUDIENCE     = local.jwt ? join(",", var.jwt_audience) : null
    UPLOADGATE_JWKS_URL         = local.jwt ? var.jwks_url : null
    # A PEM file path: the function's zip holds only its bootstrap, so there
    # is no file to name, and a JWKS (jwks_url, or the issuer's default
    # location) follows the issuer's key rotation without a redeploy.
    UPLOADGATE_JWT_PUBLIC_KEY   = null
    UPLOADGATE_JWT_TOKEN_USE    = local.jwt ? var.jwt_token_use : null
    UPLOADGATE_JWT_LEEWAY       = local.jwt ? var.jwt_leeway : null
    UPLOADGATE_USER_CLAIM       = local.jwt ? var.user_claim : null
    UPLOADGATE_TOKEN_HEADER     = local.jwt ? var.token_header : null
    UPLOADGATE_TIERS            = local.jwt && length(var.tiers) > 0 ? join("|", [for name, policy in var.tiers : "${name}=${policy}"]) : null
    UPLOADGATE_TIER_CLAIM       = local.jwt ? var.tier_claim : null
    UPLOADGATE_SHADOW           = tostring(var.shadow)
    UPLOADGATE_REQUIRE_CHECKSUM = tostring(var.require_checksum)
    # The secret itself is in local.secrets; this says that one is set.
    UPLOADGATE_ORIGIN_SECRET = local.origin_secret_set ? "(sensitive)" : null
    UPLOADGATE_CORS_ORIGINS  = join(",", var.cors_allowed_origins)
    UPLOADGATE_FAIL_OPEN     = tostring(var.fail_open)
    UPLOADGATE_LOG           = var.log_filter
    UPLOADGATE_LOG_FORMAT    = "json"
    UPLOADGATE_METRICS       = "emf"
    # Upload mode (settle.tf). "grant" is the gate's own default, so grant
    # mode sends none of these and deploys what it did before they existed.
    # The gate needs the usage table and the event queue named (it refuses
    # upload mode without them) but uses neither: it writes no ledger and
    # polls no queue, the settle function does, so the gate's role gains
    # nothing.
    UPLOADGATE_CHARGE           = local.upload ? var.charge : null
    UPLOADGATE_SETTLE_GRACE     = local.upload ? var.settle_grace : null
    UPLOADGATE_USAGE_TABLE      = one(aws_dynamodb_table.usage[*].name)
    UPLOADGATE_SETTLE_QUEUE_URL = one(aws_sqs_queue.events[*].url)
  }
  environment = { for k, v in local.settings : k => v if v != null }

  # Every setting the settle function reads (infra/test/test_agreement.py
  # holds the keys to `cargo run -p uploadgate-settle-lambda --example
  # manifest`): the gate's own values wherever both read a setting, since
  # it settles against the reservations the gate made, and none of the
  # gate's request-only settings (CORS, client address, origin secret,
  # token header and claims, checksum requirement, object size).
  upload = var.charge == "upload"
  settle_settings = {
    UPLOADGATE_STORE              = local.settings.UPLOADGATE_STORE
    UPLOADGATE_TABLE              = local.settings.UPLOADGATE_TABLE
    UPLOADGATE_DENIAL_TTL         = local.settings.UPLOADGATE_DENIAL_TTL
    UPLOADGATE_BUCKET             = local.settings.UPLOADGATE_BUCKET
    UPLOADGATE_TARGET             = local.settings.UPLOADGATE_TARGET
    UPLOADGATE_LIMITS             = local.settings.UPLOADGATE_LIMITS
    UPLOADGATE_CONTENT_TYPES      = local.settings.UPLOADGATE_CONTENT_TYPES
    UPLOADGATE_URL_TTL            = local.settings.UPLOADGATE_URL_TTL
    UPLOADGATE_KEY_PREFIX         = local.settings.UPLOADGATE_KEY_PREFIX
    UPLOADGATE_IDENTITY           = local.settings.UPLOADGATE_IDENTITY
    UPLOADGATE_JWT_ISSUER         = local.settings.UPLOADGATE_JWT_ISSUER
    UPLOADGATE_JWT_AUDIENCE       = local.settings.UPLOADGATE_JWT_AUDIENCE
    UPLOADGATE_TIERS              = local.settings.UPLOADGATE_TIERS
    UPLOADGATE_TIER_CLAIM         = local.settings.UPLOADGATE_TIER_CLAIM
    UPLOADGATE_SHADOW             = local.settings.UPLOADGATE_SHADOW
    UPLOADGATE_FAIL_OPEN          = local.settings.UPLOADGATE_FAIL_OPEN
    UPLOADGATE_CHARGE             = "upload"
    UPLOADGATE_SETTLE_GRACE       = var.settle_grace
    UPLOADGATE_USAGE_TABLE        = local.settings.UPLOADGATE_USAGE_TABLE
    UPLOADGATE_SETTLE_QUEUE_URL   = local.settings.UPLOADGATE_SETTLE_QUEUE_URL
    UPLOADGATE_ACCEPTED_QUEUE_URL = one(aws_sqs_queue.accepted[*].url)
    UPLOADGATE_LOG                = local.settings.UPLOADGATE_LOG
    UPLOADGATE_LOG_FORMAT         = local.settings.UPLOADGATE_LOG_FORMAT
    UPLOADGATE_METRICS            = local.settings.UPLOADGATE_METRICS
  }
  settle_environment = { for k, v in local.settle_settings : k => v if v != null }

  # Sensitive values, merged over their placeholders in local.environment
  # only where the function takes its environment, so that nothing else
  # (the function_environment output, plans) shows them. Whether the secret
  # is set is not itself a secret.
  origin_secret_set = nonsensitive(var.origin_secret != null)
  secrets           = local.origin_secret_set ? { UPLOADGATE_ORIGIN_SECRET = var.origin_secret } : {}

  # One limit of the limits grammar (NAME=SUBJECT:AMOUNT/WINDOW[:ALGORITHM]),
  # for the plan-time checks of var.limits and var.tiers.
  limit_pattern = "^[A-Za-z0-9_-]+=(user|ip):[0-9]+(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?/([0-9]+(s|m|h|d|w)|1mo)(:(sliding|gcra|fixed))?$"

  # Objects the gate may presign a PUT for; everything that is scoped to the
  # upload prefix (IAM grant, If-None-Match deny, lifecycle) uses this.
  upload_objects_arn = "${aws_s3_bucket.uploads.arn}/${var.key_prefix}*"

  create_certificate = var.custom_domain != null && try(var.custom_domain.acm_certificate_arn, null) == null
  certificate_arn    = var.custom_domain == null ? null : (local.create_certificate ? aws_acm_certificate_validation.this[0].certificate_arn : var.custom_domain.acm_certificate_arn)
}
