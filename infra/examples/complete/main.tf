module "uploadgate" {
  source = "../../modules/uploadgate"

  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  name            = var.name
  lambda_zip_path = coalesce(var.lambda_zip_path, "${path.root}/../../../target/lambda/uploadgate-lambda/bootstrap.zip")

  # Pay for what lands: with "upload" the module adds the settle function
  # (its own zip) and the queues, notification and usage table it needs.
  charge                 = var.charge
  settle_lambda_zip_path = var.charge == "upload" ? coalesce(var.settle_lambda_zip_path, "${path.root}/../../../target/lambda/uploadgate-settle/bootstrap.zip") : null

  # Tokens of the example's Cognito user pool (cognito.tf), for its app
  # client, in the module's token_header (x-upload-token: CloudFront's
  # origin access control overwrites Authorization). The module refuses
  # token settings outside identity = "jwt", as the gate does.
  identity     = var.identity
  jwt_issuer   = var.identity == "jwt" ? local.jwt_issuer : null
  jwt_audience = var.identity == "jwt" ? [aws_cognito_user_pool_client.upload_page.id] : []

  limits               = var.limits
  cors_allowed_origins = var.cors_allowed_origins
  max_object_bytes     = 52428800
  content_types        = ["application/pdf", "image/png", "image/jpeg", "image/tiff"]
  url_ttl              = "5m"
  key_prefix           = "uploads/"

  # An example must be destroyable. Keep both at their safe defaults (true /
  # false) in production.
  table_deletion_protection = false
  bucket_force_destroy      = true

  # Emulators implement no CloudFront response headers policy API; use the
  # AWS managed SecurityHeadersPolicy there and the module's own otherwise.
  response_headers_policy_id = local.emulated ? "67f7725c-6f97-4210-82d7-5512b31e9d03" : null

  # Emulators report a distribution deployed at once; the provider's waiter
  # would still sleep through its minimum delay.
  cloudfront_wait_for_deployment = !local.emulated

  waf = {
    enabled = var.enable_waf
  }

  rest_api = {
    enabled = var.enable_rest_api
    # Access logs need the account-level API Gateway CloudWatch role, which
    # an example should not change.
    access_logs = false
  }
}
