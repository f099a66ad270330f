# Optional coarse outer shield: a per-IP rate-based rule evaluated at the
# edge before a request reaches (and bills) the function. The gate's own
# per-user/per-IP limits stay the real control.
resource "aws_wafv2_web_acl" "this" {
  #checkov:skip=CKV2_AWS_31:WAF logging needs a Firehose or an aws-waf-logs-* destination and costs per GB; sampled requests and metrics are on.
  count    = var.waf.enabled ? 1 : 0
  provider = aws.us_east_1

  name        = "${var.name}-edge"
  description = "Rate limit per IP in front of the ${var.name} upload gate."
  scope       = "CLOUDFRONT"

  default_action {
    allow {}
  }

  rule {
    name     = "rate-per-ip"
    priority = 0

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.waf.rate_limit
        evaluation_window_sec = var.waf.evaluation_window_sec
        aggregate_key_type    = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-per-ip"
      sampled_requests_enabled   = true
    }
  }

  # Baseline AWS managed group (no subscription fee): known exploit payloads,
  # including the Log4j JNDI lookups.
  rule {
    name     = "aws-known-bad-inputs"
    priority = 1

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name}-edge"
    sampled_requests_enabled   = true
  }

  tags = var.tags
}
