# CloudFront is the only way in: it signs every origin request with SigV4
# (origin access control) and the function URL accepts nothing unsigned.

resource "aws_cloudfront_origin_access_control" "lambda" {
  name                              = "${var.name}-lambda"
  description                       = "Signs requests from the ${var.name} distribution to its function URL."
  origin_access_control_origin_type = "lambda"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# Security headers on every response. The gate's answers carry presigned
# URLs: no caching anywhere, no framing, no sniffing, no referrer leaks.
resource "aws_cloudfront_response_headers_policy" "security" {
  #checkov:skip=CKV_AWS_259:HSTS is enforced (2 years, subdomains, override); preload commits the whole registrable domain to browsers' lists, a decision a reusable module cannot make.
  count = var.response_headers_policy_id == null ? 1 : 0

  name    = "${var.name}-security-headers"
  comment = "Security headers for the ${var.name} upload gate API."

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 63072000
      include_subdomains         = true
      preload                    = false
      override                   = true
    }

    content_type_options {
      override = true
    }

    frame_options {
      frame_option = "DENY"
      override     = true
    }

    referrer_policy {
      referrer_policy = "no-referrer"
      override        = true
    }

    content_security_policy {
      content_security_policy = "default-src 'none'; frame-ancestors 'none'"
      override                = true
    }
  }

  custom_headers_config {
    items {
      header   = "Cache-Control"
      value    = "no-store"
      override = true
    }
  }
}

locals {
  response_headers_policy_id = var.response_headers_policy_id == null ? aws_cloudfront_response_headers_policy.security[0].id : var.response_headers_policy_id
  # The function URL is https://<id>.lambda-url.<region>.on.aws/; the origin
  # wants the bare host.
  function_url_host = trimsuffix(trimprefix(aws_lambda_function_url.this.function_url, "https://"), "/")
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_86:Standard access logs need a log bucket with ACLs enabled; the function's own log group records every decision.
  #checkov:skip=CKV_AWS_68:WAF is optional (waf.enabled) because a web ACL costs a fixed monthly fee; the gate's own limits are the primary control.
  #checkov:skip=CKV_AWS_310:Origin failover needs a second origin; there is one regional function and a failover group cannot retry POST requests.
  #checkov:skip=CKV_AWS_374:Geo restriction is a business decision, not a default of a reusable module.
  #checkov:skip=CKV2_AWS_42:A custom certificate is optional (custom_domain); without it the *.cloudfront.net certificate is used.
  #checkov:skip=CKV_AWS_174:With the default *.cloudfront.net certificate CloudFront fixes the minimum protocol to TLSv1; with custom_domain the module sets TLSv1.2_2021.
  #checkov:skip=CKV_AWS_305:The origin is a function that serves / itself; a default root object only rewrites / to an object key, which an API origin does not have.
  #checkov:skip=CKV2_AWS_32:A response headers policy is always attached (local.response_headers_policy_id: the module's own or the caller's); checkov cannot follow the conditional.
  #checkov:skip=CKV2_AWS_47:The Log4j rule group is part of the optional web ACL (waf.enabled), see waf.tf.
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  comment         = "${var.name} upload gate"
  price_class     = var.cloudfront_price_class
  aliases         = var.custom_domain == null ? [] : [var.custom_domain.name]
  web_acl_id      = var.waf.enabled ? aws_wafv2_web_acl.this[0].arn : null

  wait_for_deployment = var.cloudfront_wait_for_deployment

  origin {
    origin_id                = "lambda"
    domain_name              = local.function_url_host
    origin_access_control_id = aws_cloudfront_origin_access_control.lambda.id

    # A second proof that a request came through this distribution, checked
    # by the gate (UPLOADGATE_ORIGIN_SECRET).
    dynamic "custom_header" {
      for_each = var.origin_secret == null ? [] : [var.origin_secret]
      content {
        name  = "x-origin-verify"
        value = custom_header.value
      }
    }

    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = "https-only"
      origin_ssl_protocols   = ["TLSv1.2"]
    }
  }

  default_cache_behavior {
    target_origin_id = "lambda"
    # POST needs the full method set; nothing is cached (CachingDisabled).
    allowed_methods            = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached_methods             = ["GET", "HEAD"]
    viewer_protocol_policy     = "https-only"
    compress                   = true
    cache_policy_id            = var.cache_policy_id
    origin_request_policy_id   = var.origin_request_policy_id
    response_headers_policy_id = local.response_headers_policy_id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = local.certificate_arn == null
    acm_certificate_arn            = local.certificate_arn
    ssl_support_method             = local.certificate_arn == null ? null : "sni-only"
    minimum_protocol_version       = local.certificate_arn == null ? "TLSv1" : "TLSv1.2_2021"
  }

  tags = var.tags
}

# New function URLs need both permissions (since October 2025), each scoped
# to this distribution.
resource "aws_lambda_permission" "cloudfront_invoke_function_url" {
  statement_id           = "AllowCloudFrontInvokeFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.this.function_name
  principal              = "cloudfront.amazonaws.com"
  source_arn             = aws_cloudfront_distribution.this.arn
  function_url_auth_type = "AWS_IAM"
}

# AWS recommends invoked_via_function_url = true on this statement (the
# condition lambda:InvokedViaFunctionUrl = true: the grant then covers
# invocations through the function URL only). The hashicorp/aws 5.x provider
# this module supports has no such argument (5.100.0's schema lacks it; it
# came with the 6.x series, hashicorp/terraform-provider-aws#44858), and
# Terraform cannot set an argument the provider does not know, so the
# statement is scoped by principal and source ARN only: it lets this
# distribution call lambda:InvokeFunction. CloudFront only ever calls a
# function through its URL (Lambda@Edge is deployed differently), so nobody
# else gains anything. On a provider that has the argument, widen
# versions.tf and add it here; infra/test/test_docs.py fails as soon as the
# provider in use offers it and this resource does not set it.
resource "aws_lambda_permission" "cloudfront_invoke_function" {
  statement_id  = "AllowCloudFrontInvokeFunction"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "cloudfront.amazonaws.com"
  source_arn    = aws_cloudfront_distribution.this.arn
}
