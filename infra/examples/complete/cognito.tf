# The issuer of the tokens the gate verifies (identity = "jwt"): a Cognito
# user pool and an app client for the upload page. The pool publishes its
# public keys at https://cognito-idp.<region>.amazonaws.com/<pool id>/.well-known/jwks.json,
# where the gate fetches them (the module's jwks_url default); the app
# signs people in, and sends the token it gets in the module's token_header.
resource "aws_cognito_user_pool" "users" {
  name = "${var.name}-users"

  # Accounts are created by an administrator (or a back end), not by
  # whoever finds the app client id in the page: every account is quota.
  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  password_policy {
    minimum_length                   = 12
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = false
    temporary_password_validity_days = 7
  }

  # An example must be destroyable; keep it ACTIVE in production.
  deletion_protection = "INACTIVE"
}

resource "aws_cognito_user_pool_client" "upload_page" {
  name         = "${var.name}-upload-page"
  user_pool_id = aws_cognito_user_pool.users.id

  # A browser app cannot keep a secret: a public client that signs in with
  # SRP (the password never leaves the browser) and refreshes its tokens.
  # ADMIN_USER_PASSWORD_AUTH needs AWS credentials (the deploy guide's
  # smoke test signs in with it); browsers cannot use it.
  generate_secret               = false
  explicit_auth_flows           = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"]
  prevent_user_existence_errors = "ENABLED"
  enable_token_revocation       = true

  # Short-lived access and ID tokens: a token is the gate's only proof of
  # who is asking, and a stolen one spends its owner's quota until it expires.
  access_token_validity  = 60
  id_token_validity      = 60
  refresh_token_validity = 30
  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "days"
  }
}

locals {
  # `endpoint` is cognito-idp.<region>.amazonaws.com/<pool id>: the `iss` of
  # the pool's tokens without its scheme.
  jwt_issuer = "https://${aws_cognito_user_pool.users.endpoint}"
}
