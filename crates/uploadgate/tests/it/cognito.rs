//! A real issuer: moto's Cognito (`cognito-idp`, in the moto server the
//! DynamoDB tests already use) creates a user pool, an app client and users,
//! and signs their tokens; `uploadgate serve` in `jwt` mode verifies them
//! against the pool's JWKS, as it would Cognito's.
//!
//! What moto's Cognito does (moto 5.2): it signs every pool's tokens with
//! one RS256 key (`kid` "dummy", the private half ships with moto), and
//! publishes it at `<moto>/<pool id>/.well-known/jwks.json`. The `iss` is
//! AWS's, `https://cognito-idp.<region>.amazonaws.com/<pool id>`, not the
//! loopback URL, so the issuer is read from the token and the JWKS URL is
//! given apart. Access tokens carry `client_id`, `username` and
//! `token_use: access`; ID tokens `aud`, `cognito:username` and
//! `token_use: id`; both carry the user's `sub`. The Cognito calls below
//! are its JSON protocol, unsigned: moto routes them by `X-Amz-Target`, and
//! `InitiateAuth` is unsigned on AWS too.

use serde_json::{Value, json};

use super::serve;

/// One Cognito Identity Provider call (JSON 1.1 protocol).
async fn cognito(endpoint: &str, operation: &str, body: Value) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            format!("AWSCognitoIdentityProviderService.{operation}"),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{operation}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A user pool with an app client that signs in with a password.
struct Pool {
    id: String,
    client: String,
}

impl Pool {
    async fn create(endpoint: &str, name: &str) -> Pool {
        let pool = cognito(endpoint, "CreateUserPool", json!({ "PoolName": name })).await;
        let id = pool["UserPool"]["Id"].as_str().unwrap().to_owned();
        let client = cognito(
            endpoint,
            "CreateUserPoolClient",
            json!({
                "UserPoolId": id,
                "ClientName": format!("{name}-app"),
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            }),
        )
        .await;
        let client = client["UserPoolClient"]["ClientId"]
            .as_str()
            .unwrap()
            .to_owned();
        Pool { id, client }
    }

    /// Creates `username` with a permanent password, signs in
    /// (`USER_PASSWORD_AUTH`); the user's `sub` as Cognito reports it, and
    /// the access and ID tokens.
    async fn user(&self, endpoint: &str, username: &str) -> (String, String, String) {
        let password = "Correct-Horse-9-Battery";
        cognito(
            endpoint,
            "AdminCreateUser",
            json!({ "UserPoolId": self.id, "Username": username, "MessageAction": "SUPPRESS" }),
        )
        .await;
        cognito(
            endpoint,
            "AdminSetUserPassword",
            json!({ "UserPoolId": self.id, "Username": username, "Password": password, "Permanent": true }),
        )
        .await;
        let user = cognito(
            endpoint,
            "AdminGetUser",
            json!({ "UserPoolId": self.id, "Username": username }),
        )
        .await;
        let sub = user["UserAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["Name"] == "sub")
            .and_then(|a| a["Value"].as_str())
            .unwrap()
            .to_owned();
        let auth = cognito(
            endpoint,
            "InitiateAuth",
            json!({
                "ClientId": self.client,
                "AuthFlow": "USER_PASSWORD_AUTH",
                "AuthParameters": { "USERNAME": username, "PASSWORD": password },
            }),
        )
        .await;
        let tokens = &auth["AuthenticationResult"];
        (
            sub,
            tokens["AccessToken"].as_str().unwrap().to_owned(),
            tokens["IdToken"].as_str().unwrap().to_owned(),
        )
    }
}

fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `token` with its claims replaced by `claims` and its signature kept.
fn with_claims(token: &str, claims: &Value) -> String {
    use base64::Engine as _;
    let parts: Vec<&str> = token.split('.').collect();
    let payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// `POST /v1/uploads` with `Authorization: Bearer <token>` (no header
/// without a token): the status, the `WWW-Authenticate` field and the body.
async fn upload(api: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{api}/v1/uploads"))
        .json(&json!({"filename": "scan.pdf", "contentType": "application/pdf", "size": 10}));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, res.json().await.unwrap())
}

fn remaining(answer: &Value) -> u64 {
    answer["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "uploads")
        .and_then(|l| l["remaining"].as_u64())
        .unwrap()
}

#[tokio::test]
async fn moto_cognito_tokens_are_verified_and_each_user_spends_their_own_quota() {
    let endpoint = uploadgate_dynamodb::test_util::endpoint();
    let name = format!("uploadgate-it-{}", std::process::id());
    let pool = Pool::create(&endpoint, &name).await;
    let (alice_sub, alice, alice_id_token) = pool.user(&endpoint, "alice").await;
    let (bob_sub, bob, _) = pool.user(&endpoint, "bob").await;

    // The issuer as the token states it: AWS's URL, not moto's address.
    let issuer = claims(&alice)["iss"].as_str().unwrap().to_owned();
    assert_eq!(
        issuer,
        format!("https://cognito-idp.us-east-1.amazonaws.com/{}", pool.id)
    );
    assert_eq!(claims(&alice)["client_id"], pool.client.as_str());
    assert_eq!(claims(&alice_id_token)["aud"], pool.client.as_str());

    let jwks = format!("{endpoint}/{}/.well-known/jwks.json", pool.id);
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        &[
            ("UPLOADGATE_IDENTITY", "jwt"),
            ("UPLOADGATE_JWT_ISSUER", issuer.as_str()),
            ("UPLOADGATE_JWKS_URL", jwks.as_str()),
            ("UPLOADGATE_JWT_AUDIENCE", pool.client.as_str()),
            ("UPLOADGATE_LIMITS", "uploads=user:2/3h"),
        ],
    );

    // The access token: 200, and the user is the token's `sub`, which is
    // the one Cognito reports for alice.
    let (status, _, answer) = upload(&s.api, Some(&alice)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(claims(&alice)["sub"], alice_sub.as_str());
    let key = answer["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("uploads/{alice_sub}/")), "{key}");
    assert_eq!(remaining(&answer), 1);
    let quota: Value = reqwest::Client::new()
        .get(format!("{}/v1/quota", s.api))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quota["user"], alice_sub.as_str(), "{quota}");

    // Tampered: alice's signature over claims naming bob. Refused, and
    // charged to nobody.
    let mut forged = claims(&alice);
    forged["sub"] = bob_sub.clone().into();
    let (status, challenge, answer) = upload(&s.api, Some(&with_claims(&alice, &forged))).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["detail"], "the token's signature does not verify");
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer") && c.contains("invalid_token")),
        "{challenge:?}"
    );
    let (status, _, answer) = upload(&s.api, None).await;
    assert_eq!(status, 401, "{answer}");

    // A token of another pool: moto signs it with the very same key, so its
    // signature verifies; its issuer does not.
    let other = Pool::create(&endpoint, &format!("{name}-other")).await;
    let (_, stranger, _) = other.user(&endpoint, "alice").await;
    let (status, _, answer) = upload(&s.api, Some(&stranger)).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["detail"], "the token is from another issuer");

    // Alice's second upload, with her ID token (`aud`, not `client_id`):
    // the same user, the same quota, which is then spent.
    let (status, _, answer) = upload(&s.api, Some(&alice_id_token)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(remaining(&answer), 0);
    let (status, _, answer) = upload(&s.api, Some(&alice)).await;
    assert_eq!(status, 429, "{answer}");

    // Bob spends his own.
    let (status, _, answer) = upload(&s.api, Some(&bob)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("uploads/{bob_sub}/")),
        "{answer}"
    );
    assert_eq!(remaining(&answer), 1);
}
