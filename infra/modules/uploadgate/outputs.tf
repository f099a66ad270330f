output "endpoint" {
  description = "Base URL of the gate through CloudFront (custom domain when set). POST {endpoint}/v1/uploads."
  value       = "https://${var.custom_domain == null ? aws_cloudfront_distribution.this.domain_name : var.custom_domain.name}"
}

output "cloudfront_distribution_id" {
  description = "ID of the CloudFront distribution."
  value       = aws_cloudfront_distribution.this.id
}

output "cloudfront_distribution_arn" {
  description = "ARN of the CloudFront distribution (the source ARN of both Lambda permissions)."
  value       = aws_cloudfront_distribution.this.arn
}

output "cloudfront_domain_name" {
  description = "*.cloudfront.net domain name of the distribution."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "origin_access_control_id" {
  description = "ID of the origin access control that signs requests to the function URL."
  value       = aws_cloudfront_origin_access_control.lambda.id
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "function_url" {
  description = "Function URL (AWS_IAM: only CloudFront can call it)."
  value       = aws_lambda_function_url.this.function_url
}

output "function_environment" {
  description = "The UPLOADGATE_* environment given to the function, with the value of UPLOADGATE_ORIGIN_SECRET (when set) replaced by \"(sensitive)\"."
  value       = local.environment
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.lambda.arn
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = aws_iam_role.lambda.name
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.lambda.name
}

output "table_name" {
  description = "Name of the DynamoDB limits table."
  value       = aws_dynamodb_table.limits.name
}

output "table_arn" {
  description = "ARN of the DynamoDB limits table."
  value       = aws_dynamodb_table.limits.arn
}

output "bucket_name" {
  description = "Name of the upload bucket."
  value       = aws_s3_bucket.uploads.id
}

output "bucket_arn" {
  description = "ARN of the upload bucket."
  value       = aws_s3_bucket.uploads.arn
}

output "key_prefix" {
  description = "Prefix of every uploaded object key."
  value       = var.key_prefix
}

output "web_acl_arn" {
  description = "ARN of the WAF web ACL, or null when waf.enabled is false."
  value       = var.waf.enabled ? aws_wafv2_web_acl.this[0].arn : null
}

output "rest_api_url" {
  description = "URL of POST /upload-check on the REST API, or null when rest_api.enabled is false."
  value       = local.rest_api_enabled ? "${aws_api_gateway_stage.this[0].invoke_url}/upload-check" : null
}

output "certificate_validation_records" {
  description = "DNS records that validate the requested ACM certificate (create them when route53_zone_id is not given)."
  value = local.create_certificate ? [
    for o in aws_acm_certificate.this[0].domain_validation_options : {
      name  = o.resource_record_name
      type  = o.resource_record_type
      value = o.resource_record_value
    }
  ] : []
}

output "usage_table_name" {
  description = "Name of the DynamoDB usage table (the ledger of settled uploads), or null when charge is grant."
  value       = one(aws_dynamodb_table.usage[*].name)
}

output "usage_table_arn" {
  description = "ARN of the DynamoDB usage table, or null when charge is grant."
  value       = one(aws_dynamodb_table.usage[*].arn)
}

output "events_queue_url" {
  description = "URL of the queue of the bucket's ObjectCreated events (UPLOADGATE_SETTLE_QUEUE_URL), or null when charge is grant."
  value       = one(aws_sqs_queue.events[*].url)
}

output "events_queue_arn" {
  description = "ARN of the queue of the bucket's ObjectCreated events, or null when charge is grant."
  value       = one(aws_sqs_queue.events[*].arn)
}

output "events_dlq_arn" {
  description = "ARN of the event queue's dead-letter queue (events the settle function could not settle), or null when charge is grant."
  value       = one(aws_sqs_queue.events_dlq[*].arn)
}

output "accepted_queue_url" {
  description = "URL of the queue of accepted uploads (UPLOADGATE_ACCEPTED_QUEUE_URL), the processing app's input, or null when charge is grant."
  value       = one(aws_sqs_queue.accepted[*].url)
}

output "accepted_queue_arn" {
  description = "ARN of the queue of accepted uploads (grant the processing app sqs:ReceiveMessage and sqs:DeleteMessage on it), or null when charge is grant."
  value       = one(aws_sqs_queue.accepted[*].arn)
}

output "accepted_dlq_arn" {
  description = "ARN of the accepted queue's dead-letter queue, or null when charge is grant."
  value       = one(aws_sqs_queue.accepted_dlq[*].arn)
}

output "settle_function_name" {
  description = "Name of the settle function, or null when charge is grant."
  value       = one(aws_lambda_function.settle[*].function_name)
}

output "settle_function_environment" {
  description = "The UPLOADGATE_* environment given to the settle function, or null when charge is grant."
  value       = local.upload ? local.settle_environment : null
}

output "settle_role_name" {
  description = "Name of the settle function's execution role, or null when charge is grant."
  value       = one(aws_iam_role.settle[*].name)
}

output "settle_log_group_name" {
  description = "CloudWatch log group of the settle function, or null when charge is grant."
  value       = one(aws_cloudwatch_log_group.settle[*].name)
}

output "dlq_alarm_arn" {
  description = "ARN of the alarm on the event queue's dead-letter queue, or null when charge is grant."
  value       = one(aws_cloudwatch_metric_alarm.events_dlq[*].arn)
}
