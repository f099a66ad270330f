# Created here, not by Lambda on first invocation, so it has a retention and
# the role needs no logs:CreateLogGroup.
resource "aws_cloudwatch_log_group" "lambda" {
  #checkov:skip=CKV_AWS_338:Request logs of a rate gate are operational, not audit records; retention is the log_retention_days variable (default 30) to keep cost at rest low.
  #checkov:skip=CKV_AWS_158:Log data is encrypted by CloudWatch Logs by default; a customer managed key is used when kms_key_arn is set.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose: the gate only talks to DynamoDB and S3 public endpoints, and a VPC would need NAT or endpoints (the cost the DAX design paid).
  #checkov:skip=CKV_AWS_116:A dead-letter queue only applies to asynchronous invocations; the gate is always invoked synchronously (function URL, API Gateway).
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signing step in the build; the zip comes from cargo lambda in CI.
  #checkov:skip=CKV_AWS_173:The environment holds settings (table, bucket, limits) and at most origin_secret, a header value CloudFront also holds; Lambda encrypts it at rest with its AWS managed key, or with kms_key_arn when set.
  #checkov:skip=CKV_AWS_50:X-Ray is optional by design (lambda_tracing); PassThrough by default avoids per-trace cost.
  function_name = var.name
  description   = "uploadgate: meters uploads and returns presigned S3 PUT URLs."
  role          = aws_iam_role.lambda.arn

  # cargo lambda builds a static arm64 binary named bootstrap.
  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap"
  package_type  = "Zip"

  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)

  memory_size                    = var.lambda_memory_size
  timeout                        = var.lambda_timeout
  reserved_concurrent_executions = var.lambda_reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = merge(local.environment, local.secrets)
  }

  tracing_config {
    mode = var.lambda_tracing ? "Active" : "PassThrough"
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy.lambda,
    aws_cloudwatch_log_group.lambda,
  ]
}

# AWS_IAM: only SigV4-signed requests get in. The only principal allowed to
# sign for it is CloudFront, for this distribution (see cloudfront.tf), so the
# function cannot be called around CloudFront.
resource "aws_lambda_function_url" "this" {
  function_name      = aws_lambda_function.this.function_name
  authorization_type = "AWS_IAM"
  invoke_mode        = "BUFFERED"
}
