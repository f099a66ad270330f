# Optional: the original design's frontend, an API Gateway REST API with
# POST /upload-check. Both methods proxy to the same function, which serves
# REST (payload v1) as well as function URL (v2) events and answers the CORS
# preflight itself from UPLOADGATE_CORS_ORIGINS, so there is one CORS policy.

locals {
  rest_api_enabled = var.rest_api.enabled
  rest_api_methods = local.rest_api_enabled ? toset(["POST", "OPTIONS"]) : toset([])
}

resource "aws_api_gateway_rest_api" "this" {
  count = local.rest_api_enabled ? 1 : 0

  name        = var.name
  description = "uploadgate: POST /upload-check"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  tags = var.tags
}

resource "aws_api_gateway_resource" "upload_check" {
  count = local.rest_api_enabled ? 1 : 0

  rest_api_id = aws_api_gateway_rest_api.this[0].id
  parent_id   = aws_api_gateway_rest_api.this[0].root_resource_id
  path_part   = "upload-check"
}

resource "aws_api_gateway_method" "upload_check" {
  #checkov:skip=CKV_AWS_59:Open like the original design it reproduces: the gate meters every request per user and per IP itself, and a CORS preflight (OPTIONS) cannot carry credentials.
  #checkov:skip=CKV2_AWS_53:The function validates and parses the body into typed values; a duplicate API Gateway model would drift from it.
  for_each = local.rest_api_methods

  rest_api_id   = aws_api_gateway_rest_api.this[0].id
  resource_id   = aws_api_gateway_resource.upload_check[0].id
  http_method   = each.key
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "upload_check" {
  for_each = local.rest_api_methods

  rest_api_id             = aws_api_gateway_rest_api.this[0].id
  resource_id             = aws_api_gateway_resource.upload_check[0].id
  http_method             = aws_api_gateway_method.upload_check[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.this.invoke_arn
}

resource "aws_api_gateway_deployment" "this" {
  count = local.rest_api_enabled ? 1 : 0

  rest_api_id = aws_api_gateway_rest_api.this[0].id

  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.upload_check[0].id,
      [for m in aws_api_gateway_method.upload_check : m.id],
      [for i in aws_api_gateway_integration.upload_check : i.id],
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [aws_api_gateway_integration.upload_check]
}

resource "aws_cloudwatch_log_group" "rest_api" {
  #checkov:skip=CKV_AWS_338:Access logs of the optional REST API share the function's retention (log_retention_days) to keep cost at rest low.
  #checkov:skip=CKV_AWS_158:Log data is encrypted by CloudWatch Logs by default; a customer managed key is used when kms_key_arn is set.
  count = local.rest_api_enabled && var.rest_api.access_logs ? 1 : 0

  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:Decisions must never be cached: each request is charged against the user's quota.
  #checkov:skip=CKV2_AWS_29:The optional web ACL is CloudFront-scoped; a REGIONAL one for this stage is left to the caller. Stage throttling is set in method settings.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; the backend here is a Lambda proxy integration.
  #checkov:skip=CKV_AWS_73:X-Ray is optional (lambda_tracing), off by default to avoid per-trace cost.
  #checkov:skip=CKV2_AWS_4:Execution logging is ERROR when rest_api.access_logs is on (the default); it needs the account-level API Gateway CloudWatch role, so it can be turned off.
  #checkov:skip=CKV_AWS_76:Access logging is on by default (rest_api.access_logs) but optional, since it needs the account-level API Gateway CloudWatch role.
  count = local.rest_api_enabled ? 1 : 0

  rest_api_id          = aws_api_gateway_rest_api.this[0].id
  deployment_id        = aws_api_gateway_deployment.this[0].id
  stage_name           = var.rest_api.stage_name
  xray_tracing_enabled = var.lambda_tracing

  dynamic "access_log_settings" {
    for_each = var.rest_api.access_logs ? [1] : []

    content {
      destination_arn = aws_cloudwatch_log_group.rest_api[0].arn
      format = jsonencode({
        requestId = "$context.requestId"
        ip        = "$context.identity.sourceIp"
        method    = "$context.httpMethod"
        path      = "$context.resourcePath"
        status    = "$context.status"
        latency   = "$context.integrationLatency"
        error     = "$context.integrationErrorMessage"
      })
    }
  }

  tags = var.tags
}

resource "aws_api_gateway_method_settings" "this" {
  #checkov:skip=CKV_AWS_225:Decisions must never be cached: each request is charged against the user's quota.
  #checkov:skip=CKV_AWS_308:No cache is enabled, so there is no cache data to encrypt.
  count = local.rest_api_enabled ? 1 : 0

  rest_api_id = aws_api_gateway_rest_api.this[0].id
  stage_name  = aws_api_gateway_stage.this[0].stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = var.rest_api.access_logs ? "ERROR" : "OFF"
    caching_enabled        = false
    throttling_rate_limit  = var.rest_api.throttle_rate_limit
    throttling_burst_limit = var.rest_api.throttle_burst_limit
  }
}

resource "aws_lambda_permission" "rest_api" {
  count = local.rest_api_enabled ? 1 : 0

  statement_id  = "AllowApiGatewayUploadCheck"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "apigateway.amazonaws.com"
  # This stage, any method, this path only.
  source_arn = "${aws_api_gateway_rest_api.this[0].execution_arn}/${var.rest_api.stage_name}/*/upload-check"
}
