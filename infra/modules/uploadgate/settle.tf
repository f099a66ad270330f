# Upload mode (charge = "upload", docs/design/settlement.md): a grant is a
# reservation, settled when its object lands. S3 sends the bucket's
# ObjectCreated events for the upload prefix to the event queue; the settle
# function, fed by an event source mapping, settles each object against its
# reservation, records it in the usage table and hands it off, as one JSON
# message, to the accepted queue the processing app consumes. In grant mode
# none of it exists (count = 0).

data "aws_caller_identity" "current" {
  count = local.upload ? 1 : 0
}

locals {
  # The settle function's queue consumption: batches of up to 10 messages
  # (each usually one S3 record), delivered as soon as they are there. A
  # batching window would only save invocations at low traffic, and the
  # time from landing to the accepted hand-off is what the processing app
  # waits. A settle is one HeadObject and a few item writes, so a batch fits
  # well inside the timeout, and partial batch failures keep one bad
  # message from redelivering the other nine.
  settle_batch_size   = 10
  settle_batch_window = 0

  # AWS: "set the source queue's visibility timeout to at least six times
  # the timeout that you configure on your function", plus the batching
  # window, so a message is not delivered again while a retried invocation
  # still works on it.
  events_visibility_timeout = 6 * var.settle_lambda_timeout + local.settle_batch_window

  # SQS-managed SSE, or the module's customer managed key. S3 can send to a
  # queue under a customer managed key only if the key policy lets
  # s3.amazonaws.com use it (never aws/sqs, whose policy cannot be changed).
  queue_kms_key = var.kms_key_arn
}

################################################################################
# Queues: the bucket's events, and accepted uploads; each with its DLQ
################################################################################

# The dead-letter queues keep SQS's default redrive-allow policy (any queue
# of the account may name them). An aws_sqs_queue_redrive_allow_policy
# would restrict each to its source queue, but moto (infra/test) neither
# stores nor returns RedriveAllowPolicy, so the provider would wait for it
# forever there; naming a DLQ needs sqs:SetQueueAttributes on the source
# queue, which nothing here grants.
resource "aws_sqs_queue" "events_dlq" {
  count = local.upload ? 1 : 0

  name                              = "${var.name}-events-dlq"
  message_retention_seconds         = 1209600 # 14 days, the most SQS keeps: time to look and redrive.
  sqs_managed_sse_enabled           = local.queue_kms_key == null ? true : null
  kms_master_key_id                 = local.queue_kms_key
  kms_data_key_reuse_period_seconds = local.queue_kms_key == null ? null : 300

  tags = var.tags
}

resource "aws_sqs_queue" "events" {
  count = local.upload ? 1 : 0

  name                       = "${var.name}-events"
  visibility_timeout_seconds = local.events_visibility_timeout
  # Four days, SQS's default: an event that settles late is still charged
  # (LateSettle), so there is no point at which it is better dropped.
  message_retention_seconds         = 345600
  sqs_managed_sse_enabled           = local.queue_kms_key == null ? true : null
  kms_master_key_id                 = local.queue_kms_key
  kms_data_key_reuse_period_seconds = local.queue_kms_key == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq[0].arn
    maxReceiveCount     = var.queue_max_receive_count
  })

  tags = var.tags
}

resource "aws_sqs_queue" "accepted_dlq" {
  count = local.upload ? 1 : 0

  name                              = "${var.name}-accepted-dlq"
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = local.queue_kms_key == null ? true : null
  kms_master_key_id                 = local.queue_kms_key
  kms_data_key_reuse_period_seconds = local.queue_kms_key == null ? null : 300

  tags = var.tags
}

# The processing app's queue: only metered, verified uploads arrive here.
# Its consumer sets its own visibility per receive if it needs more than
# the default 30 s.
resource "aws_sqs_queue" "accepted" {
  count = local.upload ? 1 : 0

  name                              = "${var.name}-accepted"
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = local.queue_kms_key == null ? true : null
  kms_master_key_id                 = local.queue_kms_key
  kms_data_key_reuse_period_seconds = local.queue_kms_key == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.accepted_dlq[0].arn
    maxReceiveCount     = var.queue_max_receive_count
  })

  tags = var.tags
}

# S3 may send to the event queue, for this bucket in this account only
# (aws:SourceAccount guards against a bucket of the same name elsewhere
# after this one is deleted). Nothing else gets a resource policy: the
# settle function's role grants its own access.
data "aws_iam_policy_document" "events_queue" {
  count = local.upload ? 1 : 0

  statement {
    sid       = "AllowS3ObjectCreatedEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events[0].arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.uploads.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current[0].account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  count = local.upload ? 1 : 0

  queue_url = aws_sqs_queue.events[0].id
  policy    = data.aws_iam_policy_document.events_queue[0].json
}

# The bucket's whole notification configuration: S3 keeps one per bucket,
# so anything else that should hear of new objects takes them from the
# accepted queue. S3 checks that it may send to the queue when this is
# written, hence the dependency on the queue policy.
resource "aws_s3_bucket_notification" "uploads" {
  count = local.upload ? 1 : 0

  bucket = aws_s3_bucket.uploads.id

  queue {
    id            = "uploadgate-settle"
    queue_arn     = aws_sqs_queue.events[0].arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.key_prefix == "" ? null : var.key_prefix
  }

  depends_on = [aws_sqs_queue_policy.events]
}

# An event in the dead-letter queue is an upload that was not settled: its
# reservation will be handed back after the URL's TTL plus the grace, so
# the gate quietly stops counting it (docs/design/settlement.md, why grant
# is the default). Say so as soon as one lands there.
resource "aws_cloudwatch_metric_alarm" "events_dlq" {
  count = local.upload ? 1 : 0

  alarm_name          = "${var.name}-unsettled-uploads"
  alarm_description   = "Events of ${var.name}'s bucket in the dead-letter queue: uploads that were not settled (their quota will be handed back). Look at the settle function's logs, then redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.events_dlq[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.dlq_alarm_actions
  ok_actions          = var.dlq_alarm_actions

  tags = var.tags
}

################################################################################
# Usage table: the ledger of settled uploads
################################################################################

# The layout of crates/uploadgate-dynamodb's ledger (`uploadgate table
# create`'s usage table): partition `user`, sort `sk`
# (<landed_at ms, 20 digits>#<key>), and index by_month (`month`, `sk`,
# projecting everything) that reads every user's records of a month in
# order. No TTL: the ledger is the record of what was charged.
resource "aws_dynamodb_table" "usage" {
  count = local.upload ? 1 : 0

  name                        = "${var.name}-usage"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "user"
  range_key                   = "sk"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "user"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "month"
    type = "S"
  }

  global_secondary_index {
    name            = "by_month"
    hash_key        = "month"
    range_key       = "sk"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = var.table_point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

################################################################################
# The settle function, its role and its event source mapping
################################################################################

resource "aws_iam_role" "settle" {
  count = local.upload ? 1 : 0

  name               = "${var.name}-settle"
  description        = "Execution role of the ${var.name} settle function."
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "settle" {
  count = local.upload ? 1 : 0
  # With lambda_tracing, X-Ray's write actions (shared with the other role).
  source_policy_documents = var.lambda_tracing ? [data.aws_iam_policy_document.xray.json] : []


  # Exactly the calls compiled into the settle function, per resource
  # (infra/test/test_agreement.py derives them from `cargo run -p
  # uploadgate-settle-lambda --example manifest` and `cargo tree`):
  #   GetItem, PutItem  the store's read and conditional write (and the
  #                     Puts of a TransactWriteItems) on the limits table:
  #                     settling marks a reservation settled, in the same
  #                     compare-and-swap as the gate.
  # No DeleteItem or table administration: built without `admin`.
  statement {
    sid = "LimitsTableItems"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
    ]
    resources = [aws_dynamodb_table.limits.arn]
  }

  #   PutItem  a settled upload's record, and its month's marker;
  #   Query    the ledger's page reads, compiled in with the `ledger`
  #            feature. The settle step never pages, so the grant stops at
  #            the table: not its by_month index.
  statement {
    sid = "UsageLedger"
    actions = [
      "dynamodb:PutItem",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.usage[0].arn]
  }

  # HeadObject (authorised as s3:GetObject) for the stored size, content
  # type and checksum; PutObjectTagging to quarantine. Under the upload
  # prefix only.
  statement {
    sid = "SettleUploads"
    actions = [
      "s3:GetObject",
      "s3:PutObjectTagging",
    ]
    resources = [local.upload_objects_arn]
  }

  statement {
    sid       = "HandOffAccepted"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.accepted[0].arn]
  }

  # The event source mapping polls with the function's role: it receives
  # and deletes (the same two calls `uploadgate settle`'s poller makes),
  # and reads the queue's attributes (AWS requires GetQueueAttributes for
  # an SQS event source). No ChangeMessageVisibility: a failed message
  # waits out the visibility timeout.
  statement {
    sid = "ConsumeEvents"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.events[0].arn]
  }

  statement {
    sid = "OwnLogGroup"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.settle[0].arn}:*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]

    content {
      sid = "CustomerManagedKey"
      # The tables and queues under the customer managed key: Decrypt to
      # read items and receive messages, GenerateDataKey to send one. Only
      # through those two services.
      actions = [
        "kms:Decrypt",
        "kms:GenerateDataKey",
      ]
      resources = [var.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values = [
          "dynamodb.${data.aws_region.current.name}.amazonaws.com",
          "sqs.${data.aws_region.current.name}.amazonaws.com",
        ]
      }
    }
  }
}

resource "aws_iam_role_policy" "settle" {
  count = local.upload ? 1 : 0

  name   = "${var.name}-settle"
  role   = aws_iam_role.settle[0].id
  policy = data.aws_iam_policy_document.settle[0].json
}

resource "aws_cloudwatch_log_group" "settle" {
  #checkov:skip=CKV_AWS_338:Settle logs are operational; the usage table is the record of what was charged. Retention is log_retention_days.
  #checkov:skip=CKV_AWS_158:Log data is encrypted by CloudWatch Logs by default; a customer managed key is used when kms_key_arn is set.
  count = local.upload ? 1 : 0

  name              = "/aws/lambda/${var.name}-settle"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

resource "aws_lambda_function" "settle" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose: the settle function only talks to DynamoDB, S3 and SQS public endpoints, and a VPC would need NAT or endpoints.
  #checkov:skip=CKV_AWS_116:A function DLQ only applies to asynchronous invocations; this one is invoked by an SQS event source mapping, whose queue has its own dead-letter queue.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signing step in the build; the zip comes from cargo lambda in CI.
  #checkov:skip=CKV_AWS_173:The environment holds settings (tables, bucket, queues, limits) and no secret; Lambda encrypts it at rest with its AWS managed key, or with kms_key_arn when set.
  #checkov:skip=CKV_AWS_50:X-Ray is optional by design (lambda_tracing); PassThrough by default avoids per-trace cost.
  count = local.upload ? 1 : 0

  function_name = "${var.name}-settle"
  description   = "uploadgate: settles landed uploads against their reservations (S3 events from SQS)."
  role          = aws_iam_role.settle[0].arn

  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap"
  package_type  = "Zip"

  filename         = var.settle_lambda_zip_path
  source_code_hash = filebase64sha256(var.settle_lambda_zip_path)

  memory_size = var.settle_lambda_memory_size
  timeout     = var.settle_lambda_timeout
  # Equal to the mapping's maximum concurrency: the mapping never scales
  # past what is reserved, so it is never throttled (a throttled batch
  # counts as a receive toward the dead-letter queue).
  reserved_concurrent_executions = var.settle_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = local.settle_environment
  }

  tracing_config {
    mode = var.lambda_tracing ? "Active" : "PassThrough"
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy.settle,
    aws_cloudwatch_log_group.settle,
  ]
}

resource "aws_lambda_event_source_mapping" "settle" {
  count = local.upload ? 1 : 0

  event_source_arn                   = aws_sqs_queue.events[0].arn
  function_name                      = aws_lambda_function.settle[0].arn
  batch_size                         = local.settle_batch_size
  maximum_batching_window_in_seconds = local.settle_batch_window
  # The function answers with the messages it could not settle; only those
  # are delivered again.
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.settle_concurrency
  }

  # Lambda checks at creation that the role may receive from the queue.
  depends_on = [aws_iam_role_policy.settle]
}
