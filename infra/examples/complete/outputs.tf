output "endpoint" {
  description = "Base URL of the gate through CloudFront."
  value       = module.uploadgate.endpoint
}

output "cloudfront_distribution_id" {
  description = "ID of the CloudFront distribution."
  value       = module.uploadgate.cloudfront_distribution_id
}

output "cloudfront_distribution_arn" {
  description = "ARN of the CloudFront distribution."
  value       = module.uploadgate.cloudfront_distribution_arn
}

output "origin_access_control_id" {
  description = "ID of the origin access control."
  value       = module.uploadgate.origin_access_control_id
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = module.uploadgate.function_name
}

output "function_url" {
  description = "Function URL (AWS_IAM)."
  value       = module.uploadgate.function_url
}

output "function_environment" {
  description = "Environment of the function."
  value       = module.uploadgate.function_environment
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = module.uploadgate.role_name
}

output "log_group_name" {
  description = "Log group of the function."
  value       = module.uploadgate.log_group_name
}

output "table_name" {
  description = "Name of the DynamoDB limits table."
  value       = module.uploadgate.table_name
}

output "bucket_name" {
  description = "Name of the upload bucket."
  value       = module.uploadgate.bucket_name
}

output "key_prefix" {
  description = "Prefix of uploaded keys."
  value       = module.uploadgate.key_prefix
}

output "web_acl_arn" {
  description = "ARN of the WAF web ACL, if enabled."
  value       = module.uploadgate.web_acl_arn
}

output "rest_api_url" {
  description = "URL of POST /upload-check, if enabled."
  value       = module.uploadgate.rest_api_url
}

output "usage_table_name" {
  description = "Name of the usage table, if charge is upload."
  value       = module.uploadgate.usage_table_name
}

output "events_queue_url" {
  description = "URL of the queue of the bucket's ObjectCreated events, if charge is upload."
  value       = module.uploadgate.events_queue_url
}

output "events_queue_arn" {
  description = "ARN of the queue of the bucket's ObjectCreated events, if charge is upload."
  value       = module.uploadgate.events_queue_arn
}

output "events_dlq_arn" {
  description = "ARN of the event queue's dead-letter queue, if charge is upload."
  value       = module.uploadgate.events_dlq_arn
}

output "accepted_queue_url" {
  description = "URL of the queue of accepted uploads (the processing app's input), if charge is upload."
  value       = module.uploadgate.accepted_queue_url
}

output "accepted_queue_arn" {
  description = "ARN of the queue of accepted uploads, if charge is upload."
  value       = module.uploadgate.accepted_queue_arn
}

output "accepted_dlq_arn" {
  description = "ARN of the accepted queue's dead-letter queue, if charge is upload."
  value       = module.uploadgate.accepted_dlq_arn
}

output "settle_function_name" {
  description = "Name of the settle function, if charge is upload."
  value       = module.uploadgate.settle_function_name
}

output "settle_function_environment" {
  description = "Environment of the settle function, if charge is upload."
  value       = module.uploadgate.settle_function_environment
}

output "settle_role_name" {
  description = "Name of the settle function's execution role, if charge is upload."
  value       = module.uploadgate.settle_role_name
}

output "settle_log_group_name" {
  description = "Log group of the settle function, if charge is upload."
  value       = module.uploadgate.settle_log_group_name
}

output "dlq_alarm_arn" {
  description = "ARN of the alarm on the event queue's dead-letter queue, if charge is upload."
  value       = module.uploadgate.dlq_alarm_arn
}

output "user_pool_id" {
  description = "ID of the Cognito user pool whose tokens the gate accepts."
  value       = aws_cognito_user_pool.users.id
}

output "user_pool_client_id" {
  description = "ID of the upload page's app client: the audience of the tokens the gate accepts."
  value       = aws_cognito_user_pool_client.upload_page.id
}

output "jwt_issuer" {
  description = "The issuer (iss) of the pool's tokens."
  value       = local.jwt_issuer
}
