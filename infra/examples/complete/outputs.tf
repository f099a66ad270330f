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
