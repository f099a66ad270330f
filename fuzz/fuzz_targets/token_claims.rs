//! `JwtVerifier::verify` on tokens that *are* signed with the test key, so
//! everything past the signature is reached: the algorithm, the issuer,
//! `exp`/`nbf` against the clock with the leeway, the audience or
//! Cognito's `client_id`, `token_use`, the user claim and the tier claim.
//!
//! The fuzzer picks each claim (absent, of any JSON type, or a near miss of
//! the valid value) and the header's `alg`; the target signs the token with
//! the test key and compares the verdict with an oracle written from the
//! rules in `token/mod.rs`'s docs. A refusal is a 401 whose
//! `WWW-Authenticate` challenge is always there (RFC 6750).
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use uploadgate_core::UserId;
use uploadgate_fuzz::{
    AUDIENCE, ISSUER, LEEWAY, NOW, TEST_PRIVATE_PEM, TIER_CLAIM, TOKEN_USE, check_message, ready,
    verifier,
};
use uploadgate_http::ApiError;
use uploadgate_http::token::JwtVerifier;

static VERIFIER: LazyLock<JwtVerifier> = LazyLock::new(|| verifier(header::AUTHORIZATION));
static KEY: LazyLock<EncodingKey> = LazyLock::new(|| {
    EncodingKey::from_ed_pem(TEST_PRIVATE_PEM.as_bytes()).expect("the test key parses")
});

/// A JSON value, biased towards the values a claim is compared with.
#[derive(Arbitrary, Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// Seconds from now (exp, nbf); a fraction in 1/1000 s.
    FromNow(i32, u16),
    Float(f64),
    Str(String),
    /// One of the strings the verifier knows.
    Known(u8),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

const KNOWN: [&str; 8] = [
    ISSUER,
    AUDIENCE,
    TOKEN_USE,
    "id",
    "alice",
    "pro",
    "https://issuer.example.com/pool-2",
    "",
];

impl Json {
    fn value(&self, depth: u8) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => json!(i),
            Json::FromNow(s, ms) => {
                let t =
                    (NOW.as_millis() / 1000) as f64 + f64::from(*s) + f64::from(*ms % 1000) / 1e3;
                json!(t)
            }
            // JSON has no NaN or infinity.
            Json::Float(f) if f.is_finite() => json!(f),
            Json::Float(_) => Value::Null,
            Json::Str(s) => Value::String(s.clone()),
            Json::Known(i) => Value::String(KNOWN[usize::from(*i) % KNOWN.len()].into()),
            Json::Array(_) | Json::Object(_) if depth > 3 => Value::Null,
            Json::Array(items) => items.iter().map(|j| j.value(depth + 1)).collect(),
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, j)| (k.clone(), j.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Alg {
    EdDsa,
    Other(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    alg: Alg,
    kid: Option<String>,
    iss: Option<Json>,
    aud: Option<Json>,
    client_id: Option<Json>,
    exp: Option<Json>,
    nbf: Option<Json>,
    token_use: Option<Json>,
    sub: Option<Json>,
    tier: Option<Json>,
    /// Claims the verifier does not read; a known name is overwritten.
    extra: Vec<(String, Json)>,
}

impl Input {
    fn claims(&self) -> Map<String, Value> {
        let mut claims: Map<String, Value> = self
            .extra
            .iter()
            .map(|(k, j)| (k.clone(), j.value(1)))
            .collect();
        for (name, claim) in [
            ("iss", &self.iss),
            ("aud", &self.aud),
            ("client_id", &self.client_id),
            ("exp", &self.exp),
            ("nbf", &self.nbf),
            ("token_use", &self.token_use),
            ("sub", &self.sub),
            (TIER_CLAIM, &self.tier),
        ] {
            match claim {
                Some(j) => claims.insert(name.into(), j.value(1)),
                None => claims.remove(name),
            };
        }
        claims
    }

    fn alg(&self) -> String {
        match &self.alg {
            Alg::EdDsa => "EdDSA".into(),
            Alg::Other(i) => ["RS256", "ES256", "HS256", "none", "PS256", "ES384", "EdDSA"]
                [usize::from(*i) % 7]
                .into(),
            Alg::Raw(s) => s.clone(),
        }
    }
}

fn sign(alg: &str, kid: Option<&str>, claims: &Map<String, Value>) -> String {
    let mut header = json!({"typ": "JWT", "alg": alg});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &KEY, Algorithm::EdDSA).expect("signs");
    format!("{message}.{signature}")
}

/// The verdict the rules give: the user and tiers, or a refusal.
fn oracle(alg: &str, claims: &Map<String, Value>) -> Option<(String, Vec<String>)> {
    if alg != "EdDSA" {
        return None;
    }
    // `iss` is required; jsonwebtoken also takes a list that names it.
    let issuer_ok = match claims.get("iss")? {
        Value::String(s) => s == ISSUER,
        Value::Array(list) => {
            list.iter().all(Value::is_string) && list.iter().any(|v| v.as_str() == Some(ISSUER))
        }
        _ => false,
    };
    if !issuer_ok {
        return None;
    }
    let now = NOW.as_millis() as f64 / 1000.0;
    let leeway = LEEWAY.as_secs_f64();
    let exp = claims.get("exp")?.as_f64()?;
    if now > exp + leeway {
        return None;
    }
    if let Some(nbf) = claims.get("nbf")
        && nbf.as_f64().is_none_or(|nbf| nbf > now + leeway)
    {
        return None;
    }
    let accepted = |v: &Value| v.as_str() == Some(AUDIENCE);
    let by_aud = match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().any(accepted),
        Some(one) => accepted(one),
        None => false,
    };
    if !by_aud && !claims.get("client_id").is_some_and(accepted) {
        return None;
    }
    if claims.get("token_use")?.as_str()? != TOKEN_USE {
        return None;
    }
    let sub = claims.get("sub")?.as_str()?;
    UserId::parse(sub).ok()?;
    let tiers = match claims.get(TIER_CLAIM) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Some((sub.to_owned(), tiers))
}

fuzz_target!(|input: Input| {
    let claims = input.claims();
    let alg = input.alg();
    let token = sign(&alg, input.kid.as_deref(), &claims);
    let verdict = ready(VERIFIER.verify(&token));
    match (verdict, oracle(&alg, &claims)) {
        (Ok(v), Some((user, tiers))) => {
            assert_eq!(v.user.as_str(), user);
            assert_eq!(v.tiers, tiers);
        }
        (Err(e), None) => {
            check_message(&e.to_string(), 256);
            use axum::response::IntoResponse;
            let response = ApiError::InvalidToken(e).into_response();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .expect("a 401 carries a WWW-Authenticate challenge (RFC 6750)");
            assert!(
                challenge
                    .as_bytes()
                    .starts_with(b"Bearer error=\"invalid_token\"")
            );
        }
        (Ok(v), None) => panic!("accepted {v:?} from {claims:?} ({alg})"),
        (Err(e), Some(want)) => panic!("refused {want:?} from {claims:?} ({alg}): {e}"),
    }
});
