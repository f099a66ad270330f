terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100.0, < 6.0.0"
      # CloudFront only accepts WAF web ACLs and ACM certificates from
      # us-east-1, whatever region the rest of the stack lives in.
      configuration_aliases = [aws.us_east_1]
    }
  }
}
