# One item per (limit, subject) key. On-demand billing: the gate's traffic is
# bursty and cheap at rest, and a provisioned table would throttle bursts.
resource "aws_dynamodb_table" "limits" {
  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  # Housekeeping only: TTL deletes late (typically within two days), so the
  # gate never relies on it for window arithmetic.
  ttl {
    attribute_name = "expireAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.table_point_in_time_recovery
  }

  # enabled = true with no key ARN means the AWS managed key aws/dynamodb.
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}
