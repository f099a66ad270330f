# Execution role of the gate. Least privilege: the table's item actions the
# store performs, PutObject under the upload prefix (a presigned URL carries
# its signer's rights, so this grant is what bounds every URL), and writes to
# the function's own log group.

data "aws_region" "current" {}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${var.name}-lambda"
  description        = "Execution role of the ${var.name} upload gate."
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json

  tags = var.tags
}

# Tracing (lambda_tracing): X-Ray's write actions, for the gate's role and
# the settle function's alike. They support no resource-level permissions:
# AWS requires "*" (it is what AWSXRayDaemonWriteAccess grants).
data "aws_iam_policy_document" "xray" {
  statement {
    sid = "XRayWrite"
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
    ]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "lambda" {
  # With lambda_tracing, X-Ray's write actions (shared with the other role).
  source_policy_documents = var.lambda_tracing ? [data.aws_iam_policy_document.xray.json] : []

  # Exactly the item calls compiled into the function (infra/test/
  # test_agreement.py reads them from the operations the store crate
  # declares, `cargo run -p uploadgate-lambda --example manifest`, and the
  # features of the function's build, `cargo tree`, and fails on any
  # difference):
  #   GetItem    consistent read for GET /v1/quota and to re-check a cached
  #              denial older than denial_ttl;
  #   PutItem    the one conditional write per decision, and each Put inside
  #              TransactWriteItems (user and ip keys together): a
  #              transaction has no action of its own, each item is
  #              authorised as its single-item action.
  # No DeleteItem: quota reset (`uploadgate quota reset`, with the
  # operator's own credentials) and table administration (CreateTable,
  # DescribeTable, *TimeToLive) live behind the dynamodb crate's `admin`
  # feature, which only the CLI enables; the function is built without it,
  # and the table is this module's job. No Scan, Query, UpdateItem or
  # ConditionCheckItem.
  statement {
    sid = "LimitsTableItems"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
    ]
    resources = [aws_dynamodb_table.limits.arn]
  }

  # Presigning is local; the URL is used with these credentials' rights, so
  # PutObject under the prefix is all it can ever do.
  statement {
    sid       = "PresignUploads"
    actions   = ["s3:PutObject"]
    resources = [local.upload_objects_arn]
  }

  # The log group is created by this module (so Lambda needs no
  # logs:CreateLogGroup); streams live under "<group ARN>:*".
  statement {
    sid = "OwnLogGroup"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]

    content {
      sid = "CustomerManagedKey"
      # An SSE-KMS PutObject (made by the browser with the role's presigned
      # rights) needs GenerateDataKey; reading the table under a customer
      # managed key needs Decrypt. Only through those two services.
      actions = [
        "kms:Decrypt",
        "kms:GenerateDataKey",
      ]
      resources = [var.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values = [
          "dynamodb.${data.aws_region.current.name}.amazonaws.com",
          "s3.${data.aws_region.current.name}.amazonaws.com",
        ]
      }
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "${var.name}-gate"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}
