# The function's environment for each identity mode, and the variable
# checks that refuse what the gate would refuse at start-up. Planned with
# mock providers: no AWS, no emulator. infra/test/run.sh runs it with
#   terraform test -var lambda_zip_path=<any .zip file>
# (the module hashes the zip at plan time, so it must exist).

# Mocked values must pass the provider's own checks (a JSON policy, ARNs).
mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
}

mock_provider "aws" {
  alias = "us_east_1"
}

# local.environment drops null settings, so it is known at plan time only
# once every value is: give the two names AWS assigns at apply time.
override_resource {
  target          = aws_s3_bucket.uploads
  override_during = plan
  values = {
    id  = "uploadgate-uploads-test"
    arn = "arn:aws:s3:::uploadgate-uploads-test"
  }
}

override_resource {
  target          = aws_dynamodb_table.limits
  override_during = plan
  values = {
    name = "uploadgate"
    arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/uploadgate"
  }
}

variables {
  cors_allowed_origins = ["https://app.example.com"]
  jwt_issuer           = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
  jwt_audience         = ["client-a", "client-b"]
}

run "jwt_is_the_default_and_sends_only_what_applies" {
  command = plan

  assert {
    condition     = output.function_environment["UPLOADGATE_IDENTITY"] == "jwt"
    error_message = "identity must default to jwt, the function's own default"
  }
  assert {
    condition     = output.function_environment["UPLOADGATE_JWT_ISSUER"] == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    error_message = "the issuer must be sent as given"
  }
  assert {
    condition     = output.function_environment["UPLOADGATE_JWT_AUDIENCE"] == "client-a,client-b"
    error_message = "the audiences must be joined with commas"
  }
  assert {
    condition     = output.function_environment["UPLOADGATE_TOKEN_HEADER"] == "x-upload-token"
    error_message = "the token header must default to x-upload-token, never authorization"
  }
  assert {
    condition = alltrue([for k in ["UPLOADGATE_IDENTITY_HEADER", "UPLOADGATE_JWKS_URL", "UPLOADGATE_JWT_PUBLIC_KEY", "UPLOADGATE_JWT_TOKEN_USE", "UPLOADGATE_TIERS", "UPLOADGATE_TIER_CLAIM"] :
    !contains(keys(output.function_environment), k)])
    error_message = "settings that do not apply must not be sent"
  }
}

run "tiers_are_joined_in_the_gate_grammar" {
  command = plan

  variables {
    tiers = {
      pro  = "uploads=user:100/3h;volume=user:5GiB/30d"
      team = "uploads=user:1000/1d:fixed"
    }
    tier_claim    = "cognito:groups"
    jwks_url      = "https://keys.example.com/jwks.json"
    jwt_token_use = "access"
    shadow        = true
  }

  assert {
    condition     = output.function_environment["UPLOADGATE_TIERS"] == "pro=uploads=user:100/3h;volume=user:5GiB/30d|team=uploads=user:1000/1d:fixed"
    error_message = "tiers must be name=<limits> items joined with |"
  }
  assert {
    condition     = output.function_environment["UPLOADGATE_TIER_CLAIM"] == "cognito:groups" && output.function_environment["UPLOADGATE_JWKS_URL"] == "https://keys.example.com/jwks.json" && output.function_environment["UPLOADGATE_JWT_TOKEN_USE"] == "access" && output.function_environment["UPLOADGATE_SHADOW"] == "true"
    error_message = "tier_claim, jwks_url, jwt_token_use and shadow must be sent as given"
  }
}

run "header_mode_sends_no_token_setting" {
  command = plan

  variables {
    identity     = "header"
    jwt_issuer   = null
    jwt_audience = []
  }

  assert {
    condition     = output.function_environment["UPLOADGATE_IDENTITY_HEADER"] == "x-user-id"
    error_message = "header mode must send the identity header"
  }
  assert {
    condition     = length([for k in keys(output.function_environment) : k if startswith(k, "UPLOADGATE_JWT") || contains(["UPLOADGATE_JWKS_URL", "UPLOADGATE_TOKEN_HEADER", "UPLOADGATE_USER_CLAIM", "UPLOADGATE_TIERS", "UPLOADGATE_TIER_CLAIM"], k)]) == 0
    error_message = "no token setting may be sent outside jwt mode"
  }
}

run "anonymous_mode_takes_ip_limits" {
  command = plan

  variables {
    identity     = "anonymous"
    jwt_issuer   = null
    jwt_audience = []
    limits       = "burst=ip:30/1m:gcra;daily=ip:200/1d:fixed"
  }

  assert {
    condition     = output.function_environment["UPLOADGATE_IDENTITY"] == "anonymous" && !contains(keys(output.function_environment), "UPLOADGATE_IDENTITY_HEADER")
    error_message = "anonymous mode sends neither an identity header nor token settings"
  }
}

# --- What the gate would refuse is refused at plan time ---

run "jwt_needs_an_issuer_and_an_audience" {
  command = plan
  variables {
    jwt_issuer   = null
    jwt_audience = []
  }
  expect_failures = [var.jwt_issuer, var.jwt_audience]
}

run "token_settings_are_refused_outside_jwt" {
  command = plan
  variables {
    identity      = "header"
    jwks_url      = "https://keys.example.com/jwks.json"
    jwt_token_use = "access"
    tiers         = { pro = "uploads=user:100/3h" }
    tier_claim    = "custom:plan"
  }
  expect_failures = [var.jwt_issuer, var.jwt_audience, var.jwks_url, var.jwt_token_use, var.tiers]
}

run "anonymous_refuses_user_limits" {
  command = plan
  variables {
    identity     = "anonymous"
    jwt_issuer   = null
    jwt_audience = []
  }
  expect_failures = [var.limits]
}

# Each of these values alone would stop the gate at start-up.
run "malformed_values" {
  command = plan
  variables {
    jwt_issuer    = "http://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    token_header  = "authorization"
    jwt_leeway    = "61s"
    jwt_token_use = "refresh"
    tiers         = { pro = "uploads=user:lots/3h" }
    tier_claim    = "custom:plan"
  }
  expect_failures = [var.jwt_issuer, var.token_header, var.jwt_leeway, var.jwt_token_use, var.tiers]
}

run "tiers_and_their_claim_go_together" {
  command = plan
  variables {
    tiers = { pro = "uploads=user:100/3h" }
  }
  expect_failures = [var.tier_claim]
}

run "the_origin_secret_reaches_the_function_but_not_the_output" {
  command = plan

  variables {
    origin_secret    = "0123456789abcdef-origin"
    require_checksum = true
  }

  assert {
    condition     = nonsensitive(aws_lambda_function.this.environment[0].variables["UPLOADGATE_ORIGIN_SECRET"] == "0123456789abcdef-origin")
    error_message = "the function must get the origin secret"
  }
  assert {
    condition     = output.function_environment["UPLOADGATE_ORIGIN_SECRET"] == "(sensitive)"
    error_message = "the output must mask the origin secret"
  }
  assert {
    condition     = output.function_environment["UPLOADGATE_REQUIRE_CHECKSUM"] == "true"
    error_message = "require_checksum must be sent as UPLOADGATE_REQUIRE_CHECKSUM"
  }
}
