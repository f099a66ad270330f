variable "region" {
  description = "AWS region of the stack (CloudFront, WAF and ACM pieces live in us-east-1 regardless)."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name of the deployment."
  type        = string
  default     = "uploadgate-example"
}

variable "endpoints" {
  description = "Emulator endpoints by service, e.g. every service at http://127.0.0.1:5000 for moto. Empty (default) means real AWS. When set, it must name every service the stack uses and only loopback URLs, so nothing reaches AWS with dummy credentials."
  type        = map(string)
  default     = {}

  validation {
    condition = length(var.endpoints) == 0 || (
      alltrue([for s in ["acm", "apigateway", "cloudfront", "cloudwatch", "cognitoidp", "dynamodb", "iam", "kms", "lambda", "logs", "route53", "s3", "sqs", "sts", "wafv2"] : contains(keys(var.endpoints), s)]) &&
      alltrue([for s in keys(var.endpoints) : contains(["acm", "apigateway", "cloudfront", "cloudwatch", "cognitoidp", "dynamodb", "iam", "kms", "lambda", "logs", "route53", "s3", "sqs", "sts", "wafv2"], s)]) &&
      alltrue([for u in values(var.endpoints) : can(regex("^https?://(127\\.[0-9]+\\.[0-9]+\\.[0-9]+|localhost|\\[::1\\])(:[0-9]+)?/?$", u))])
    )
    error_message = "endpoints must be empty or map each of acm, apigateway, cloudfront, cloudwatch, cognitoidp, dynamodb, iam, kms, lambda, logs, route53, s3, sqs, sts, wafv2 to a loopback URL (http://127.0.0.1:PORT)."
  }
}

variable "lambda_zip_path" {
  description = "Function zip from `cargo lambda build --release --arm64 --output-format zip`. null means <repo>/target/lambda/uploadgate-lambda/bootstrap.zip."
  type        = string
  default     = null
}

variable "charge" {
  description = "When uploads are paid for: grant (default: when the URL is handed out) or upload (when the object lands: adds the event and accepted queues, the bucket notification, the usage table and the settle function)."
  type        = string
  default     = "grant"
}

variable "settle_lambda_zip_path" {
  description = "Settle function zip (charge = upload) from `scripts/lambda-zip.sh --settle`. null means <repo>/target/lambda/uploadgate-settle/bootstrap.zip."
  type        = string
  default     = null
}

variable "cors_allowed_origins" {
  description = "Browser origins of the upload page."
  type        = list(string)
  default     = ["http://localhost:3000"]
}

variable "identity" {
  description = "Where the gate reads the user identity from: jwt (default: a token of the example's Cognito user pool, in x-upload-token), header (x-user-id), body (userId in the JSON body) or anonymous (per-IP limits only; set limits to match)."
  type        = string
  default     = "jwt"
}

variable "limits" {
  description = "UPLOADGATE_LIMITS for the example."
  type        = string
  default     = "uploads=user:5/3h;volume=user:50MiB/24h;burst=ip:30/1m:gcra"
}

variable "enable_waf" {
  description = "Attach the optional WAF web ACL with a per-IP rate-based rule."
  type        = bool
  default     = false
}

variable "enable_rest_api" {
  description = "Also expose POST /upload-check through an API Gateway REST API."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Default tags of every resource."
  type        = map(string)
  default = {
    project = "uploadgate"
    example = "complete"
  }
}
