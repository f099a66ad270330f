# Upload mode (charge = "upload") and grant mode, planned with mock
# providers as settings.tftest.hcl is: no AWS, no emulator. infra/test/
# run.sh runs it with -var lambda_zip_path=<any .zip file>, which also
# serves as the settle function's zip here.

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
}

mock_provider "aws" {
  alias = "us_east_1"
}

# Names and ARNs AWS assigns at apply time, so that the environments and
# the policies' inputs are known at plan time.
override_resource {
  target          = aws_s3_bucket.uploads
  override_during = plan
  values = {
    id  = "uploadgate-uploads-test"
    arn = "arn:aws:s3:::uploadgate-uploads-test"
  }
}

override_resource {
  target          = aws_dynamodb_table.limits
  override_during = plan
  values = {
    name = "uploadgate"
    arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/uploadgate"
  }
}

override_resource {
  target          = aws_dynamodb_table.usage
  override_during = plan
  values = {
    name = "uploadgate-usage"
    arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/uploadgate-usage"
  }
}

override_resource {
  target          = aws_sqs_queue.events
  override_during = plan
  values = {
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-events"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-events"
    arn = "arn:aws:sqs:eu-west-1:123456789012:uploadgate-events"
  }
}

override_resource {
  target          = aws_sqs_queue.events_dlq
  override_during = plan
  values = {
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-events-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-events-dlq"
    arn = "arn:aws:sqs:eu-west-1:123456789012:uploadgate-events-dlq"
  }
}

override_resource {
  target          = aws_sqs_queue.accepted
  override_during = plan
  values = {
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-accepted"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-accepted"
    arn = "arn:aws:sqs:eu-west-1:123456789012:uploadgate-accepted"
  }
}

override_resource {
  target          = aws_sqs_queue.accepted_dlq
  override_during = plan
  values = {
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-accepted-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-accepted-dlq"
    arn = "arn:aws:sqs:eu-west-1:123456789012:uploadgate-accepted-dlq"
  }
}

override_resource {
  target          = aws_lambda_function.settle
  override_during = plan
  values = {
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:uploadgate-settle"
  }
}

variables {
  cors_allowed_origins = ["https://app.example.com"]
  jwt_issuer           = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
  jwt_audience         = ["client-a"]
}

run "grant_is_the_default_and_creates_none_of_it" {
  command = plan

  assert {
    condition = alltrue([
      length(aws_sqs_queue.events) == 0, length(aws_sqs_queue.events_dlq) == 0,
      length(aws_sqs_queue.accepted) == 0, length(aws_sqs_queue.accepted_dlq) == 0,
      length(aws_sqs_queue_policy.events) == 0,
      length(aws_s3_bucket_notification.uploads) == 0, length(aws_dynamodb_table.usage) == 0,
      length(aws_iam_role.settle) == 0, length(aws_iam_role_policy.settle) == 0,
      length(aws_cloudwatch_log_group.settle) == 0, length(aws_lambda_function.settle) == 0,
      length(aws_lambda_event_source_mapping.settle) == 0, length(data.aws_caller_identity.current) == 0,
      length(aws_cloudwatch_metric_alarm.events_dlq) == 0,
    ])
    error_message = "grant mode must create no queue, notification, usage table, settle function or mapping"
  }
  assert {
    condition     = length([for k in keys(output.function_environment) : k if contains(["UPLOADGATE_CHARGE", "UPLOADGATE_SETTLE_GRACE", "UPLOADGATE_USAGE_TABLE", "UPLOADGATE_SETTLE_QUEUE_URL", "UPLOADGATE_ACCEPTED_QUEUE_URL"], k)]) == 0
    error_message = "grant mode must send the gate no upload-mode setting (grant is its default): its plan stays what it was"
  }
  assert {
    condition = alltrue([for o in [output.accepted_queue_url, output.accepted_queue_arn, output.accepted_dlq_arn, output.events_queue_url,
      output.events_queue_arn, output.events_dlq_arn, output.usage_table_name, output.usage_table_arn, output.settle_function_name,
    output.settle_function_environment, output.settle_role_name, output.settle_log_group_name, output.dlq_alarm_arn] : o == null])
    error_message = "upload-mode outputs must be null in grant mode"
  }
}

run "upload_creates_queues_notification_table_function_and_mapping" {
  command = plan

  variables {
    charge                 = "upload"
    settle_lambda_zip_path = var.lambda_zip_path
    settle_grace           = "20m"
  }

  # Queues: each with its DLQ, SQS-managed SSE, the visibility timeout six
  # times the settle function's.
  assert {
    condition = alltrue([for q in [aws_sqs_queue.events[0], aws_sqs_queue.events_dlq[0], aws_sqs_queue.accepted[0], aws_sqs_queue.accepted_dlq[0]] :
    q.sqs_managed_sse_enabled == true && q.kms_master_key_id == null])
    error_message = "every queue must be encrypted with SQS-managed SSE when the module has no key"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.events[0].redrive_policy) == { deadLetterTargetArn = "arn:aws:sqs:eu-west-1:123456789012:uploadgate-events-dlq", maxReceiveCount = 5 }
    error_message = "the event queue must redrive to its DLQ after 5 receives"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.accepted[0].redrive_policy) == { deadLetterTargetArn = "arn:aws:sqs:eu-west-1:123456789012:uploadgate-accepted-dlq", maxReceiveCount = 5 }
    error_message = "the accepted queue must redrive to its DLQ after 5 receives"
  }
  assert {
    condition     = aws_sqs_queue.events[0].visibility_timeout_seconds == 6 * aws_lambda_function.settle[0].timeout && aws_lambda_function.settle[0].timeout == 30
    error_message = "the event queue's visibility timeout must be six times the settle function's timeout"
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.events_dlq[0].namespace == "AWS/SQS" &&
      aws_cloudwatch_metric_alarm.events_dlq[0].metric_name == "ApproximateNumberOfMessagesVisible" &&
      aws_cloudwatch_metric_alarm.events_dlq[0].dimensions == tomap({ QueueName = "uploadgate-events-dlq" }) &&
    aws_cloudwatch_metric_alarm.events_dlq[0].comparison_operator == "GreaterThanThreshold" && aws_cloudwatch_metric_alarm.events_dlq[0].threshold == 0)
    error_message = "an event in the dead-letter queue (an unsettled upload) must raise the alarm"
  }

  # The bucket notifies the event queue of ObjectCreated under the prefix,
  # once the queue policy lets it.
  assert {
    condition = (length(aws_s3_bucket_notification.uploads[0].queue) == 1 &&
      one(aws_s3_bucket_notification.uploads[0].queue).queue_arn == "arn:aws:sqs:eu-west-1:123456789012:uploadgate-events" &&
      one(aws_s3_bucket_notification.uploads[0].queue).events == toset(["s3:ObjectCreated:*"]) &&
    one(aws_s3_bucket_notification.uploads[0].queue).filter_prefix == "uploads/")
    error_message = "the bucket must send s3:ObjectCreated:* under the key prefix to the event queue"
  }

  # The usage table: the ledger's layout.
  assert {
    condition = (aws_dynamodb_table.usage[0].hash_key == "user" && aws_dynamodb_table.usage[0].range_key == "sk" &&
      aws_dynamodb_table.usage[0].billing_mode == "PAY_PER_REQUEST" &&
      [for i in aws_dynamodb_table.usage[0].global_secondary_index : [i.name, i.hash_key, i.range_key, i.projection_type]] == [["by_month", "month", "sk", "ALL"]] &&
      aws_dynamodb_table.usage[0].point_in_time_recovery[0].enabled && aws_dynamodb_table.usage[0].server_side_encryption[0].enabled &&
    aws_dynamodb_table.usage[0].deletion_protection_enabled)
    error_message = "the usage table must be user/sk with index by_month (month, sk, ALL), on demand, with PITR, SSE and deletion protection like the limits table"
  }

  # The settle function and its mapping.
  assert {
    condition = (aws_lambda_function.settle[0].function_name == "uploadgate-settle" &&
      aws_lambda_function.settle[0].runtime == "provided.al2023" && aws_lambda_function.settle[0].architectures == tolist(["arm64"]) &&
    aws_lambda_function.settle[0].reserved_concurrent_executions == 5)
    error_message = "the settle function must be provided.al2023 on arm64 with reserved concurrency settle_concurrency"
  }
  assert {
    condition = (aws_lambda_event_source_mapping.settle[0].function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.settle[0].event_source_arn == "arn:aws:sqs:eu-west-1:123456789012:uploadgate-events" &&
      aws_lambda_event_source_mapping.settle[0].batch_size == 10 &&
    aws_lambda_event_source_mapping.settle[0].scaling_config[0].maximum_concurrency == 5)
    error_message = "the mapping must feed the event queue to the settle function with partial batch failures"
  }

  # Environments: the gate gets what it reads in upload mode, the settle
  # function the gate's shared values plus the accepted queue.
  assert {
    condition = (output.function_environment["UPLOADGATE_CHARGE"] == "upload" && output.function_environment["UPLOADGATE_SETTLE_GRACE"] == "20m" &&
      output.function_environment["UPLOADGATE_USAGE_TABLE"] == "uploadgate-usage" &&
      output.function_environment["UPLOADGATE_SETTLE_QUEUE_URL"] == "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-events" &&
    !contains(keys(output.function_environment), "UPLOADGATE_ACCEPTED_QUEUE_URL"))
    error_message = "the gate must be sent upload mode, its grace, the usage table and the event queue, and not the accepted queue"
  }
  assert {
    condition = (output.settle_function_environment["UPLOADGATE_ACCEPTED_QUEUE_URL"] == "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-accepted" &&
      output.settle_function_environment["UPLOADGATE_CHARGE"] == "upload" &&
      alltrue([for k, v in output.settle_function_environment : v == output.function_environment[k] if k != "UPLOADGATE_ACCEPTED_QUEUE_URL"]) &&
      !contains(keys(output.settle_function_environment), "UPLOADGATE_CORS_ORIGINS") &&
    aws_lambda_function.settle[0].environment[0].variables == tomap(output.settle_function_environment))
    error_message = "the settle function must read the gate's own values, and the accepted queue"
  }
  assert {
    condition     = output.accepted_queue_url == "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-accepted" && output.accepted_queue_arn == "arn:aws:sqs:eu-west-1:123456789012:uploadgate-accepted"
    error_message = "the accepted queue's URL and ARN must be outputs"
  }

  # Only S3, for this bucket in this account, may send to the event queue.
  assert {
    condition = (length(data.aws_iam_policy_document.events_queue[0].statement) == 1 &&
      data.aws_iam_policy_document.events_queue[0].statement[0].actions == toset(["sqs:SendMessage"]) &&
      [for p in data.aws_iam_policy_document.events_queue[0].statement[0].principals : [p.type, p.identifiers]] == [["Service", toset(["s3.amazonaws.com"])]] &&
      toset([for c in data.aws_iam_policy_document.events_queue[0].statement[0].condition : "${c.test} ${c.variable} ${join(",", c.values)}"]) == toset([
        "ArnEquals aws:SourceArn arn:aws:s3:::uploadgate-uploads-test",
        "StringEquals aws:SourceAccount 123456789012",
    ]))
    error_message = "the event queue policy must allow only s3.amazonaws.com to SendMessage, conditioned on the bucket and the account"
  }
}

run "a_customer_managed_key_encrypts_the_queues_and_the_settle_role_may_use_it" {
  command = plan

  variables {
    charge                 = "upload"
    settle_lambda_zip_path = var.lambda_zip_path
    kms_key_arn            = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  }

  assert {
    condition = alltrue([for q in [aws_sqs_queue.events[0], aws_sqs_queue.events_dlq[0], aws_sqs_queue.accepted[0], aws_sqs_queue.accepted_dlq[0]] :
    q.kms_master_key_id == var.kms_key_arn && q.sqs_managed_sse_enabled != true])
    error_message = "with kms_key_arn every queue must use it"
  }
  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.settle[0].statement :
      s.sid == "CustomerManagedKey" && s.resources == toset([var.kms_key_arn]) &&
    anytrue([for c in s.condition : c.variable == "kms:ViaService" && contains(c.values, "sqs.eu-west-1.amazonaws.com")])])
    error_message = "the settle role must be able to use the key through SQS"
  }
}

# --- Refused at plan time ---

run "an_unknown_charge_is_refused" {
  command = plan
  variables {
    charge = "later"
  }
  expect_failures = [var.charge]
}

run "upload_refuses_what_the_gate_refuses" {
  command = plan
  variables {
    charge                 = "upload"
    settle_lambda_zip_path = var.lambda_zip_path
    fail_open              = true
  }
  expect_failures = [var.charge]
}

run "upload_needs_the_settle_zip" {
  command = plan
  variables {
    charge = "upload"
  }
  expect_failures = [var.settle_lambda_zip_path]
}

run "settle_grace_is_bounded" {
  command = plan
  variables {
    charge                 = "upload"
    settle_lambda_zip_path = var.lambda_zip_path
    settle_grace           = "30s"
  }
  expect_failures = [var.settle_grace]
}
