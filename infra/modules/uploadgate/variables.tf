################################################################################
# Naming and shared settings
################################################################################

variable "name" {
  description = "Name of the deployment. Used for the table, the function, the role, the log group and as the bucket name prefix."
  type        = string
  default     = "uploadgate"

  validation {
    # The bucket prefix is "<name>-uploads-" and S3 caps bucket_prefix at 37 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{0,27}[a-z0-9]$", var.name))
    error_message = "name must be 2-29 characters of lower-case letters, digits and hyphens, start with a letter and not end with a hyphen."
  }
}

variable "tags" {
  description = "Tags applied to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the table, the bucket's default encryption, the log groups and the Lambda environment. null uses AWS owned/managed keys. The key policy must let DynamoDB, S3, CloudWatch Logs and Lambda use it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

################################################################################
# DynamoDB
################################################################################

variable "table_deletion_protection" {
  description = "Turns on DynamoDB deletion protection for the limits table. Keep it on in production; the example turns it off so it can be destroyed."
  type        = bool
  default     = true
}

variable "table_point_in_time_recovery" {
  description = "Turns on point-in-time recovery for the limits table."
  type        = bool
  default     = true
}

################################################################################
# S3 upload bucket
################################################################################

variable "bucket_force_destroy" {
  description = "Lets terraform destroy delete a non-empty upload bucket. Leave false in production."
  type        = bool
  default     = false
}

variable "upload_expiration_days" {
  description = "Days after which an object under the upload prefix expires. Uploads are meant to be picked up by a downstream processor; what is left is deleted."
  type        = number
  default     = 7

  validation {
    condition     = var.upload_expiration_days >= 1 && var.upload_expiration_days <= 3650 && floor(var.upload_expiration_days) == var.upload_expiration_days
    error_message = "upload_expiration_days must be a whole number between 1 and 3650."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted (their parts are billed until then)."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of at least 1."
  }
}

################################################################################
# Gate settings (UPLOADGATE_* environment of the function)
################################################################################

variable "limits" {
  description = "UPLOADGATE_LIMITS: semicolon-separated limits, each NAME=SUBJECT:AMOUNT/WINDOW[:ALGORITHM], e.g. \"uploads=user:5/3h;volume=user:50MiB/24h;burst=ip:30/1m:gcra\". SUBJECT user or ip; AMOUNT a count or bytes (50MiB, 10MB); WINDOW 90s, 15m, 3h, 1d, 1w or 1mo; ALGORITHM sliding (default), gcra or fixed. The gate parses it at start-up; this check catches typos at plan time."
  type        = string
  default     = "uploads=user:5/3h;volume=user:50MiB/24h;burst=ip:30/1m:gcra"

  validation {
    condition = alltrue([
      for item in split(";", var.limits) :
      can(regex(local.limit_pattern, trimspace(item)))
    ])
    error_message = "limits must look like NAME=SUBJECT:AMOUNT/WINDOW[:ALGORITHM] joined by ';', e.g. uploads=user:5/3h;burst=ip:30/1m:gcra (SUBJECT user|ip, ALGORITHM sliding|gcra|fixed)."
  }

  validation {
    condition     = var.identity != "anonymous" || !anytrue([for item in split(";", var.limits) : can(regex("^[^=]+=user:", trimspace(item)))])
    error_message = "identity = \"anonymous\" has no users: every limit must count per ip (NAME=ip:...)."
  }
}

variable "max_object_bytes" {
  description = "UPLOADGATE_MAX_OBJECT_BYTES: largest object the gate presigns a PUT for, in bytes."
  type        = number
  default     = 52428800

  validation {
    # 5 GiB is the largest object a single (non-multipart) PUT can create.
    condition     = var.max_object_bytes >= 1 && var.max_object_bytes <= 5368709120 && floor(var.max_object_bytes) == var.max_object_bytes
    error_message = "max_object_bytes must be a whole number between 1 and 5368709120 (5 GiB, the single-PUT limit)."
  }
}

variable "content_types" {
  description = "UPLOADGATE_CONTENT_TYPES: media types the gate presigns (joined with commas)."
  type        = list(string)
  default     = ["application/pdf", "image/png", "image/jpeg", "image/tiff"]

  validation {
    condition     = length(var.content_types) > 0 && alltrue([for ct in var.content_types : can(regex("^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$", ct))])
    error_message = "content_types must be a non-empty list of lower-case type/subtype media types without parameters."
  }
}

variable "url_ttl" {
  description = "UPLOADGATE_URL_TTL: lifetime of a presigned URL, 1s to 12h, e.g. \"5m\". Keep it to minutes: a URL also dies with the Lambda session credentials that signed it."
  type        = string
  default     = "5m"

  validation {
    condition = can(regex("^[1-9][0-9]*(s|m|h)$", var.url_ttl)) && try(
      tonumber(regex("^[0-9]+", var.url_ttl)) * lookup({ s = 1, m = 60, h = 3600 }, regex("[smh]$", var.url_ttl)) <= 43200,
      false
    )
    error_message = "url_ttl must be a duration from 1s to 12h written as a number and s, m or h, e.g. 300s or 5m."
  }
}

variable "key_prefix" {
  description = "UPLOADGATE_KEY_PREFIX: prefix of every object key the gate presigns (keys are <prefix><user>/<uuid>/<filename>). The role's s3:PutObject grant, the If-None-Match deny and the expiry rule are all scoped to it. Empty means the whole bucket."
  type        = string
  default     = "uploads/"

  validation {
    condition     = can(regex("^([A-Za-z0-9!_.*'()-]+/)*$", var.key_prefix))
    error_message = "key_prefix must be empty or path segments of safe characters, each ending with '/', e.g. uploads/."
  }
}

variable "identity" {
  description = "UPLOADGATE_IDENTITY: where the gate reads the user's identity from: \"jwt\" (default, as the function's own: a bearer token verified against jwt_issuer's keys, its user_claim is the user), \"header\" (identity_header, which something in front of the gate must set and vouch for), \"body\" (userId in the JSON body, the original design's model: any caller can claim any id) or \"anonymous\" (no user: every limit must count per ip)."
  type        = string
  default     = "jwt"

  validation {
    condition     = contains(["jwt", "header", "body", "anonymous"], var.identity)
    error_message = "identity must be jwt, header, body or anonymous."
  }
}

variable "identity_header" {
  description = "UPLOADGATE_IDENTITY_HEADER: request header carrying the user id (identity = header; not sent otherwise). Behind CloudFront OAC the Authorization header is overwritten with CloudFront's own signature, so it cannot be used."
  type        = string
  default     = "x-user-id"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.identity_header)) && !contains(["authorization", "host"], var.identity_header) && !startswith(var.identity_header, "x-amz-")
    error_message = "identity_header must be a lower-case header name, and not one that origin access control sets or overwrites (authorization, host, x-amz-*)."
  }
}

variable "jwt_issuer" {
  description = "UPLOADGATE_JWT_ISSUER: the only accepted iss (issuer) claim of a token; required with identity = jwt and refused otherwise. For a Cognito user pool: https://cognito-idp.<region>.amazonaws.com/<pool id>."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_issuer == null || can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[^[:space:]]*)?$", var.jwt_issuer))
    error_message = "jwt_issuer must be an https:// URL, e.g. https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123."
  }

  validation {
    condition     = (var.jwt_issuer != null) == (var.identity == "jwt")
    error_message = "jwt_issuer is required with identity = \"jwt\" (the issuer whose tokens the gate accepts), and only read with it: the gate refuses token settings in any other identity mode."
  }
}

variable "jwt_audience" {
  description = "UPLOADGATE_JWT_AUDIENCE: accepted audiences, joined with commas; required with identity = jwt and refused otherwise. A token's aud (Cognito ID tokens) or client_id (Cognito access tokens) must name one: the user pool app client id(s)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.jwt_audience : can(regex("^[^,[:space:]]+$", a))])
    error_message = "jwt_audience entries must be non-empty and hold no comma or whitespace (they are joined with commas)."
  }

  validation {
    condition     = (length(var.jwt_audience) > 0) == (var.identity == "jwt")
    error_message = "jwt_audience is required with identity = \"jwt\" (the app client ids tokens must be issued for), and only read with it: the gate refuses token settings in any other identity mode."
  }
}

variable "jwks_url" {
  description = "UPLOADGATE_JWKS_URL: where the issuer publishes its public keys (identity = jwt). null (default) means <jwt_issuer>/.well-known/jwks.json, Cognito's layout."
  type        = string
  default     = null

  validation {
    condition     = var.jwks_url == null || can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?/[^[:space:]]*$", var.jwks_url))
    error_message = "jwks_url must be null or an https:// URL."
  }

  validation {
    condition     = var.jwks_url == null || var.identity == "jwt"
    error_message = "jwks_url is only read with identity = \"jwt\"; the gate refuses it in any other identity mode."
  }
}

variable "jwt_token_use" {
  description = "UPLOADGATE_JWT_TOKEN_USE: with identity = jwt, require Cognito's token_use claim to be \"access\" or \"id\". null (default): either kind of token of the audience is accepted."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_token_use == null || contains(["access", "id"], coalesce(var.jwt_token_use, "-"))
    error_message = "jwt_token_use must be null, \"access\" or \"id\"."
  }

  validation {
    condition     = var.jwt_token_use == null || var.identity == "jwt"
    error_message = "jwt_token_use is only read with identity = \"jwt\"."
  }
}

variable "jwt_leeway" {
  description = "UPLOADGATE_JWT_LEEWAY: clock skew allowed on a token's exp and nbf (identity = jwt), 0s to 60s."
  type        = string
  default     = "30s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.jwt_leeway)) && try(tonumber(trimsuffix(var.jwt_leeway, "s")) <= 60, false)
    error_message = "jwt_leeway must be a number of seconds from 0s to 60s, e.g. 30s."
  }
}

variable "user_claim" {
  description = "UPLOADGATE_USER_CLAIM: the token claim that holds the user id (identity = jwt), e.g. sub (default: Cognito's immutable user id) or cognito:username."
  type        = string
  default     = "sub"

  validation {
    condition     = can(regex("^[^[:space:]]{1,128}$", var.user_claim))
    error_message = "user_claim must be a claim name: 1-128 characters, no whitespace."
  }
}

variable "token_header" {
  description = "UPLOADGATE_TOKEN_HEADER: request header carrying the token (identity = jwt), as a bare token or \"Bearer <token>\". Not authorization: behind CloudFront origin access control, CloudFront overwrites the Authorization header with its own SigV4 signature, so the token would never reach the function."
  type        = string
  default     = "x-upload-token"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.token_header)) && !contains(["authorization", "host"], var.token_header) && !startswith(var.token_header, "x-amz-")
    error_message = "token_header must be a lower-case header name, and not one that origin access control sets or overwrites (authorization, host, x-amz-*)."
  }
}

variable "tiers" {
  description = "UPLOADGATE_TIERS: quota tiers by name, each a policy in the limits grammar, e.g. { pro = \"uploads=user:100/3h;volume=user:5GiB/30d\" }; joined into UPLOADGATE_TIERS as name=<limits> items separated by vertical bars (identity = jwt, with tier_claim). A caller whose tier_claim names no tier gets limits."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name, policy in var.tiers :
      can(regex("^[A-Za-z0-9_.:-]{1,64}$", name)) && alltrue([for item in split(";", policy) : can(regex(local.limit_pattern, trimspace(item)))])
    ])
    error_message = "tiers must map names of 1-64 of A-Z a-z 0-9 _ . : - to limits in the limits grammar, e.g. { pro = \"uploads=user:100/3h;volume=user:5GiB/30d\" }."
  }

  validation {
    condition     = length(var.tiers) == 0 || var.identity == "jwt"
    error_message = "tiers are chosen by a token claim, so they are only read with identity = \"jwt\"."
  }
}

variable "tier_claim" {
  description = "UPLOADGATE_TIER_CLAIM: the token claim whose value names the caller's tier (identity = jwt; required with tiers and only with them), e.g. custom:plan or cognito:groups (a list: its first tier name wins)."
  type        = string
  default     = null

  validation {
    condition     = var.tier_claim == null || can(regex("^[^[:space:]]{1,128}$", var.tier_claim))
    error_message = "tier_claim must be a claim name: 1-128 characters, no whitespace."
  }

  validation {
    condition     = (var.tier_claim != null) == (length(var.tiers) > 0)
    error_message = "tier_claim and tiers go together: tiers are chosen by the claim, and the claim names a tier."
  }
}

variable "origin_secret" {
  description = "UPLOADGATE_ORIGIN_SECRET and CloudFront's custom origin header x-origin-verify: a shared secret (at least 16 visible characters) CloudFront adds to every origin request; the gate refuses requests without it (403). The function URL already takes only CloudFront's signed requests (OAC, AWS_IAM), so the Lambda needs none; set it as a second proof, and always when CloudFront fronts uploadgate serve. null (default): none."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.origin_secret == null || can(regex("^[!-~]{16,}$", var.origin_secret))
    error_message = "origin_secret must be at least 16 visible ASCII characters (a random token), or null."
  }
}

variable "require_checksum" {
  description = "UPLOADGATE_REQUIRE_CHECKSUM: when true, POST /v1/uploads must carry checksumSha256 (400 without it), so every URL binds the object's SHA-256 and S3 refuses any other bytes, not just another length. false (default): the checksum is optional; the JS client sends it with checksum: true."
  type        = bool
  default     = false
}

variable "shadow" {
  description = "UPLOADGATE_SHADOW: shadow mode. Decisions are computed, logged and metered (ShadowDenied) but never enforced: an over-limit request still gets its URL. For rolling out limits; false (default) enforces them."
  type        = bool
  default     = false
}

variable "cors_allowed_origins" {
  description = "UPLOADGATE_CORS_ORIGINS and the bucket's CORS AllowedOrigins: browser origins allowed to call the gate and to PUT the presigned URL, e.g. [\"https://app.example.com\"]."
  type        = list(string)

  validation {
    condition     = length(var.cors_allowed_origins) > 0 && alltrue([for o in var.cors_allowed_origins : o == "*" || can(regex("^https?://[A-Za-z0-9.*-]+(:[0-9]+)?$", o))])
    error_message = "cors_allowed_origins must be a non-empty list of scheme://host[:port] origins (no path, no trailing slash) or \"*\"."
  }
}

variable "fail_open" {
  description = "UPLOADGATE_FAIL_OPEN: when true the gate allows uploads if DynamoDB is unreachable; when false (default) it refuses them."
  type        = bool
  default     = false
}

variable "denial_ttl" {
  description = "UPLOADGATE_DENIAL_TTL: how long a function instance denies a key from its in-memory cache without asking DynamoDB, 0s to 5m (e.g. \"5s\", \"2m\"). It is also how late an instance sees a quota reset made elsewhere (uploadgate quota reset); \"0s\" makes resets exact at the cost of one consistent GetItem per denial."
  type        = string
  default     = "5s"

  validation {
    # What the gate accepts: 0s (or 0), or a positive number of s or m up to 5m.
    condition = var.denial_ttl == "0" || var.denial_ttl == "0s" || (can(regex("^[1-9][0-9]*(s|m)$", var.denial_ttl)) && try(
      tonumber(regex("^[0-9]+", var.denial_ttl)) * lookup({ s = 1, m = 60 }, regex("[sm]$", var.denial_ttl)) <= 300,
      false
    ))
    error_message = "denial_ttl must be a duration from 0s to 5m written as a number and s or m, e.g. 0s, 5s or 2m."
  }
}

variable "log_filter" {
  description = "UPLOADGATE_LOG: log filter of the function (tracing EnvFilter syntax, e.g. \"info\" or \"uploadgate=debug,info\")."
  type        = string
  default     = "info"
}

################################################################################
# Charging: pay for what lands (UPLOADGATE_CHARGE)
################################################################################

variable "charge" {
  description = "UPLOADGATE_CHARGE: when an upload is paid for. \"grant\" (default): when the URL is handed out; nothing else is created. \"upload\": the URL is a reservation, settled when its object lands. The module then also creates the bucket's ObjectCreated event queue (with a dead-letter queue) and notification, the accepted hand-off queue (with a dead-letter queue) for the processing app, the usage table and the settle function (settle_lambda_zip_path) with its event source mapping. Refused with fail_open, shadow or identity = \"anonymous\", as the gate refuses them."
  type        = string
  default     = "grant"

  validation {
    condition     = contains(["grant", "upload"], var.charge)
    error_message = "charge must be grant or upload."
  }

  validation {
    condition     = var.charge != "upload" || (!var.fail_open && !var.shadow && var.identity != "anonymous")
    error_message = "charge = \"upload\" cannot be combined with fail_open, shadow or identity = \"anonymous\": an upload admitted without a reservation would be quarantined, and anonymous callers would share one user's reservations (the gate refuses these at start-up)."
  }
}

variable "settle_grace" {
  description = "UPLOADGATE_SETTLE_GRACE (charge = upload): how long after a URL's expiry its unsettled reservation is handed back, 1m to 24h, e.g. \"15m\"."
  type        = string
  default     = "15m"

  validation {
    condition = can(regex("^[1-9][0-9]*(s|m|h)$", var.settle_grace)) && try(
      tonumber(regex("^[0-9]+", var.settle_grace)) * lookup({ s = 1, m = 60, h = 3600 }, regex("[smh]$", var.settle_grace)) >= 60 &&
      tonumber(regex("^[0-9]+", var.settle_grace)) * lookup({ s = 1, m = 60, h = 3600 }, regex("[smh]$", var.settle_grace)) <= 86400,
      false
    )
    error_message = "settle_grace must be a duration from 1m to 24h written as a number and s, m or h, e.g. 15m."
  }
}

variable "settle_lambda_zip_path" {
  description = "Path of the settle function's zip (charge = upload; required then): `scripts/lambda-zip.sh --settle`, target/lambda/uploadgate-settle/bootstrap.zip."
  type        = string
  default     = null

  validation {
    condition     = var.settle_lambda_zip_path == null || can(regex("\\.zip$", coalesce(var.settle_lambda_zip_path, "-")))
    error_message = "settle_lambda_zip_path must be null or point at a .zip file."
  }

  validation {
    condition     = var.charge != "upload" || var.settle_lambda_zip_path != null
    error_message = "charge = \"upload\" needs settle_lambda_zip_path: the settle function is what settles the reservations (without it every grant would be handed back)."
  }
}

variable "settle_lambda_timeout" {
  description = "Timeout of the settle function in seconds (charge = upload). The event queue's visibility timeout is six times this, as AWS advises for an SQS event source."
  type        = number
  default     = 30

  validation {
    condition     = var.settle_lambda_timeout >= 5 && var.settle_lambda_timeout <= 300 && floor(var.settle_lambda_timeout) == var.settle_lambda_timeout
    error_message = "settle_lambda_timeout must be a whole number of seconds between 5 and 300."
  }
}

variable "settle_lambda_memory_size" {
  description = "Memory of the settle function in MB (charge = upload). It waits on S3, DynamoDB and SQS; small is fine."
  type        = number
  default     = 256

  validation {
    condition     = var.settle_lambda_memory_size >= 128 && var.settle_lambda_memory_size <= 10240 && floor(var.settle_lambda_memory_size) == var.settle_lambda_memory_size
    error_message = "settle_lambda_memory_size must be a whole number between 128 and 10240."
  }
}

variable "settle_concurrency" {
  description = "Most settle functions running at once (charge = upload): the event source mapping's maximum concurrency and the function's reserved concurrency, equal so the mapping is never throttled. Bounds the settle step's load on the limits table."
  type        = number
  default     = 5

  validation {
    # The event source mapping's maximum concurrency is 2 to 1000.
    condition     = var.settle_concurrency >= 2 && var.settle_concurrency <= 1000 && floor(var.settle_concurrency) == var.settle_concurrency
    error_message = "settle_concurrency must be a whole number between 2 and 1000."
  }
}

variable "dlq_alarm_actions" {
  description = "ARNs notified (e.g. an SNS topic) when the event queue's dead-letter queue holds a message (charge = upload): an upload that was not settled, whose quota will be handed back. Empty (default): the alarm only changes state."
  type        = list(string)
  default     = []
}

variable "queue_max_receive_count" {
  description = "Receives after which a message of the event queue or of the accepted queue moves to its dead-letter queue (charge = upload). AWS advises at least 5 for a Lambda event source, so throttling alone does not dead-letter a message."
  type        = number
  default     = 5

  validation {
    condition     = var.queue_max_receive_count >= 1 && var.queue_max_receive_count <= 1000 && floor(var.queue_max_receive_count) == var.queue_max_receive_count
    error_message = "queue_max_receive_count must be a whole number between 1 and 1000."
  }
}

################################################################################
# Lambda
################################################################################

variable "lambda_zip_path" {
  description = "Path of the function zip built by `cargo lambda build --release --arm64 --output-format zip` (target/lambda/uploadgate-lambda/bootstrap.zip)."
  type        = string

  validation {
    condition     = can(regex("\\.zip$", var.lambda_zip_path))
    error_message = "lambda_zip_path must point at a .zip file."
  }
}

variable "lambda_memory_size" {
  description = "Memory of the function in MB. CPU scales with it; the gate is I/O-bound, so small is fine."
  type        = number
  default     = 256

  validation {
    condition     = var.lambda_memory_size >= 128 && var.lambda_memory_size <= 10240 && floor(var.lambda_memory_size) == var.lambda_memory_size
    error_message = "lambda_memory_size must be a whole number between 128 and 10240."
  }
}

variable "lambda_timeout" {
  description = "Function timeout in seconds."
  type        = number
  default     = 10

  validation {
    # CloudFront waits at most 60 s for an origin by default; more is never useful here.
    condition     = var.lambda_timeout >= 1 && var.lambda_timeout <= 60 && floor(var.lambda_timeout) == var.lambda_timeout
    error_message = "lambda_timeout must be a whole number of seconds between 1 and 60."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrent executions of the function: a hard cap on spend and on DynamoDB load. Requests above it get 429 from the function URL."
  type        = number
  default     = 10

  validation {
    condition     = var.lambda_reserved_concurrency >= 1 && floor(var.lambda_reserved_concurrency) == var.lambda_reserved_concurrency
    error_message = "lambda_reserved_concurrency must be a whole number of at least 1 (0 would disable the function)."
  }
}

variable "lambda_tracing" {
  description = "Turns on AWS X-Ray active tracing for the function (and the REST API stage)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the function's (and the REST API's) CloudWatch log groups, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

################################################################################
# CloudFront front door
################################################################################

variable "cloudfront_price_class" {
  description = "CloudFront price class."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_All", "PriceClass_200", "PriceClass_100"], var.cloudfront_price_class)
    error_message = "cloudfront_price_class must be PriceClass_All, PriceClass_200 or PriceClass_100."
  }
}

variable "cloudfront_wait_for_deployment" {
  description = "Makes apply wait until the distribution is deployed to every edge (several minutes on AWS), so the endpoint answers when apply returns."
  type        = bool
  default     = true
}

variable "cache_policy_id" {
  description = "Cache policy of the default behaviour. Defaults to the ID of the AWS managed policy Managed-CachingDisabled (AWS documents the managed IDs as fixed; a by-name data source lookup would need the API at plan time, which emulators lack)."
  type        = string
  default     = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
}

variable "origin_request_policy_id" {
  description = "Origin request policy of the default behaviour. Defaults to the ID of the AWS managed policy Managed-AllViewerExceptHostHeader: a function URL needs its own Host header."
  type        = string
  default     = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
}

variable "response_headers_policy_id" {
  description = "Response headers policy of the default behaviour. null (default) makes the module create its own security-headers policy. Set it to use an existing one, e.g. the managed Managed-SecurityHeadersPolicy (67f7725c-6f97-4210-82d7-5512b31e9d03)."
  type        = string
  default     = null
}

variable "custom_domain" {
  description = "Optional custom domain for the distribution. name is the FQDN. Give acm_certificate_arn (a us-east-1 certificate) or let the module request one; with route53_zone_id the module also writes the DNS validation and alias records."
  type = object({
    name                = string
    acm_certificate_arn = optional(string)
    route53_zone_id     = optional(string)
  })
  default = null

  validation {
    condition     = var.custom_domain == null || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.custom_domain.name))
    error_message = "custom_domain.name must be a lower-case fully qualified domain name."
  }
}

variable "waf" {
  description = "Optional AWS WAF web ACL on the distribution: a coarse per-IP rate-based rule in front of the gate's own fine-grained limits. rate_limit is requests per IP per evaluation_window_sec."
  type = object({
    enabled               = optional(bool, false)
    rate_limit            = optional(number, 300)
    evaluation_window_sec = optional(number, 300)
  })
  default = {}

  validation {
    condition     = var.waf.rate_limit >= 10 && contains([60, 120, 300, 600], var.waf.evaluation_window_sec)
    error_message = "waf.rate_limit must be at least 10 and waf.evaluation_window_sec one of 60, 120, 300, 600."
  }
}

################################################################################
# API Gateway REST API (the original design's frontend)
################################################################################

variable "rest_api" {
  description = "Optional API Gateway REST API exposing POST /upload-check (and an OPTIONS preflight) backed by the same function. The function serves both event formats. throttle_* are stage-wide limits. access_logs needs the account-level API Gateway CloudWatch role to be set."
  type = object({
    enabled              = optional(bool, false)
    stage_name           = optional(string, "v1")
    throttle_rate_limit  = optional(number, 50)
    throttle_burst_limit = optional(number, 100)
    access_logs          = optional(bool, true)
  })
  default = {}

  validation {
    condition     = can(regex("^[A-Za-z0-9_]+$", var.rest_api.stage_name)) && var.rest_api.throttle_rate_limit > 0 && var.rest_api.throttle_burst_limit > 0
    error_message = "rest_api.stage_name must be alphanumeric/underscore and the throttle limits positive."
  }
}
