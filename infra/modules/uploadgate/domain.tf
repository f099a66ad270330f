# Optional custom domain. CloudFront only takes certificates from us-east-1.

resource "aws_acm_certificate" "this" {
  count    = local.create_certificate ? 1 : 0
  provider = aws.us_east_1

  domain_name       = var.custom_domain.name
  validation_method = "DNS"

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  manage_dns = var.custom_domain != null && try(var.custom_domain.route53_zone_id, null) != null
}

resource "aws_route53_record" "certificate_validation" {
  for_each = local.create_certificate && local.manage_dns ? {
    for o in aws_acm_certificate.this[0].domain_validation_options : o.domain_name => o
  } : {}

  zone_id         = var.custom_domain.route53_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

# Without route53_zone_id, create the records from the
# certificate_validation_records output by hand while apply waits here.
resource "aws_acm_certificate_validation" "this" {
  count    = local.create_certificate ? 1 : 0
  provider = aws.us_east_1

  certificate_arn         = aws_acm_certificate.this[0].arn
  validation_record_fqdns = local.manage_dns ? [for r in aws_route53_record.certificate_validation : r.fqdn] : null
}

resource "aws_route53_record" "alias" {
  for_each = local.manage_dns ? toset(["A", "AAAA"]) : toset([])

  zone_id = var.custom_domain.route53_zone_id
  name    = var.custom_domain.name
  type    = each.key

  alias {
    name                   = aws_cloudfront_distribution.this.domain_name
    zone_id                = aws_cloudfront_distribution.this.hosted_zone_id
    evaluate_target_health = false
  }
}
