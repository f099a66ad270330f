locals {
  # Emulator mode: any endpoint set means "not real AWS". Then the provider
  # uses dummy credentials, skips the account/metadata/STS checks and talks
  # path-style S3 (an emulator on 127.0.0.1 has no virtual-host buckets).
  emulated = length(var.endpoints) > 0
}

provider "aws" {
  region = var.region

  access_key                  = local.emulated ? "test" : null
  secret_key                  = local.emulated ? "test" : null
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated
  s3_use_path_style           = local.emulated

  dynamic "endpoints" {
    for_each = local.emulated ? [var.endpoints] : []

    content {
      acm        = endpoints.value["acm"]
      apigateway = endpoints.value["apigateway"]
      cloudfront = endpoints.value["cloudfront"]
      cloudwatch = endpoints.value["cloudwatch"]
      cognitoidp = endpoints.value["cognitoidp"]
      dynamodb   = endpoints.value["dynamodb"]
      iam        = endpoints.value["iam"]
      kms        = endpoints.value["kms"]
      lambda     = endpoints.value["lambda"]
      logs       = endpoints.value["logs"]
      route53    = endpoints.value["route53"]
      s3         = endpoints.value["s3"]
      sqs        = endpoints.value["sqs"]
      sts        = endpoints.value["sts"]
      wafv2      = endpoints.value["wafv2"]
    }
  }

  default_tags {
    tags = var.tags
  }
}

# CloudFront takes WAF web ACLs and ACM certificates only from us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  access_key                  = local.emulated ? "test" : null
  secret_key                  = local.emulated ? "test" : null
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated
  s3_use_path_style           = local.emulated

  dynamic "endpoints" {
    for_each = local.emulated ? [var.endpoints] : []

    content {
      acm        = endpoints.value["acm"]
      apigateway = endpoints.value["apigateway"]
      cloudfront = endpoints.value["cloudfront"]
      cloudwatch = endpoints.value["cloudwatch"]
      cognitoidp = endpoints.value["cognitoidp"]
      dynamodb   = endpoints.value["dynamodb"]
      iam        = endpoints.value["iam"]
      kms        = endpoints.value["kms"]
      lambda     = endpoints.value["lambda"]
      logs       = endpoints.value["logs"]
      route53    = endpoints.value["route53"]
      s3         = endpoints.value["s3"]
      sqs        = endpoints.value["sqs"]
      sts        = endpoints.value["sts"]
      wafv2      = endpoints.value["wafv2"]
    }
  }

  default_tags {
    tags = var.tags
  }
}
