//! Verified identity: tokens signed with keys generated here, verified by
//! the router against a PEM key or a JWKS served by a local HTTP server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use axum::body::Body;
use base64::Engine;
use http::Request;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uploadgate_core::{FakeClock, MemoryStore};

use crate::*;

const ISSUER: &str = "https://issuer.example.com/pool-1";
const CLIENT: &str = "app-client-1";

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A signing key generated for the test, with its public forms.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    encoding: EncodingKey,
    pub(crate) public_pem: String,
    /// Ed25519's raw public key (jsonwebtoken cannot make that JWK).
    ed_x: Option<Vec<u8>>,
}

impl TestKey {
    pub(crate) fn rsa(kid: &str) -> Self {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let private = pem(
            "PRIVATE KEY",
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp)
                .unwrap()
                .as_ref(),
        );
        let public = pem("PUBLIC KEY", kp.public_key().as_der().unwrap().as_ref());
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
            public_pem: public,
            ed_x: None,
        }
    }

    pub(crate) fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pem("PRIVATE KEY", doc.as_ref()).as_bytes())
                .unwrap(),
            public_pem: pem("PUBLIC KEY", kp.public_key().as_der().unwrap().as_ref()),
            ed_x: None,
        }
    }

    pub(crate) fn ed(kid: &str) -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(pem("PRIVATE KEY", doc.as_ref()).as_bytes())
                .unwrap(),
            public_pem: pem("PUBLIC KEY", kp.public_key().as_der().unwrap().as_ref()),
            ed_x: Some(kp.public_key().as_ref().to_vec()),
        }
    }

    pub(crate) fn jwk(&self) -> Jwk {
        if let Some(x) = &self.ed_x {
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x);
            let jwk =
                json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "kid": self.kid});
            return serde_json::from_value(jwk).unwrap();
        }
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A token with `claims`, signed with this key under its `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Claims valid at [`T0`] for `sub`.
pub(crate) fn claims(sub: &str) -> Value {
    let now = T0.as_millis() / 1000;
    json!({"iss": ISSUER, "aud": CLIENT, "sub": sub, "iat": now, "exp": now + 3600})
}

/// A JWKS document on 127.0.0.1 that counts its fetches and can go down.
pub(crate) struct Jwks {
    pub(crate) url: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Jwks {
    pub(crate) async fn serve(keys: &[&TestKey]) -> Self {
        let keys = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let app = {
            let (keys, fetches, down) = (keys.clone(), fetches.clone(), down.clone());
            axum::Router::new().route(
                "/jwks.json",
                axum::routing::get(move || {
                    let (keys, fetches, down) = (keys.clone(), fetches.clone(), down.clone());
                    async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        if down.load(Ordering::SeqCst) {
                            return (http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                        }
                        let set = JwkSet {
                            keys: keys.lock().unwrap().clone(),
                        };
                        (http::StatusCode::OK, serde_json::to_string(&set).unwrap())
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Jwks {
            url: format!("http://{addr}/jwks.json"),
            keys,
            fetches,
            down,
        }
    }

    pub(crate) fn add(&self, key: &TestKey) {
        self.keys.lock().unwrap().push(key.jwk());
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

fn jwt_env<'a>(keys: (&'a str, &'a str), extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = extra.to_vec();
    env.extend([
        ("UPLOADGATE_IDENTITY", "jwt"),
        ("UPLOADGATE_JWT_ISSUER", ISSUER),
        ("UPLOADGATE_JWT_AUDIENCE", CLIENT),
        keys,
    ]);
    env
}

pub(crate) fn token_req(token: &str, body: &str) -> Request<Body> {
    let req = Request::post("/v1/uploads")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    with_peer(req, "192.0.2.10")
}

async fn quota_with(app: &axum::Router, token: &str) -> Reply {
    let req = Request::get("/v1/quota")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(app, with_peer(req, "192.0.2.10")).await
}

/// Asserts a 401 that names `reason`, carries the Bearer challenge, and
/// does not echo the token.
fn assert_refused(r: &Reply, token: &str, reason: &str) {
    assert_eq!(r.status, 401, "{}", r.raw);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(reason), "{detail:?} lacks {reason:?}");
    assert!(!token.is_empty() && !r.raw.contains(token) && !challenge.contains(token));
    // Not even the signature part leaks.
    let sig = token.rsplit('.').next().unwrap_or_default();
    assert!(sig.is_empty() || !r.raw.contains(sig));
}

#[tokio::test]
async fn tokens_of_each_algorithm_verify_through_the_jwks_and_the_user_is_sub() {
    let keys = [
        TestKey::rsa("k-rsa"),
        TestKey::ec("k-ec"),
        TestKey::ed("k-ed"),
    ];
    let jwks = Jwks::serve(&keys.iter().collect::<Vec<_>>()).await;
    let env = jwt_env(("UPLOADGATE_JWKS_URL", &jwks.url), &[]);
    let app = app_with(&env, MemoryStore::new(), FakeClock::new(T0));
    for key in &keys {
        let user = format!("user-{}", key.kid);
        let token = key.sign(&claims(&user));
        let r = send(&app, token_req(&token, &pdf(10))).await;
        assert_eq!(r.status, 200, "{:?}: {}", key.alg, r.raw);
        assert!(
            r.body["key"]
                .as_str()
                .unwrap()
                .starts_with(&format!("uploads/{user}/")),
            "{}",
            r.body["key"]
        );
        let q = quota_with(&app, &token).await;
        assert_eq!(q.body["user"], json!(user));
        assert_eq!(q.body["limits"][0]["remaining"], json!(4));
    }
    assert_eq!(jwks.fetches(), 1, "one fetch serves all three keys");
}

#[tokio::test]
async fn bad_tokens_are_401_with_the_reason_and_consume_nothing() {
    let key = TestKey::rsa("k1");
    let other = TestKey::rsa("k1");
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("issuer.pem");
    std::fs::write(&pem_path, &key.public_pem).unwrap();
    let pem_path = pem_path.to_str().unwrap().to_owned();
    let env = jwt_env(("UPLOADGATE_JWT_PUBLIC_KEY", &pem_path), &[]);
    let app = app_with(&env, MemoryStore::new(), FakeClock::new(T0));
    let now = T0.as_millis() / 1000;
    let with = |patch: Value| {
        let mut c = claims("mallory");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    // HS256 keyed with the public key: the classic algorithm confusion.
    let hs256 = {
        let header = Header::new(Algorithm::HS256);
        let secret = EncodingKey::from_secret(key.public_pem.as_bytes());
        jsonwebtoken::encode(&header, &claims("mallory"), &secret).unwrap()
    };
    // `alg: none`, unsigned.
    let none = {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims("mallory"))
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (key.sign(&with(json!({"exp": now - 31}))), "expired"),
        (key.sign(&with(json!({"exp": null}))), "no expiry"),
        (key.sign(&with(json!({"nbf": now + 31}))), "not valid yet"),
        (
            key.sign(&with(json!({"iss": "https://evil.example.com"}))),
            "another issuer",
        ),
        (key.sign(&with(json!({"iss": null}))), "another issuer"),
        (
            key.sign(&with(json!({"aud": "someone-else"}))),
            "another audience",
        ),
        (
            key.sign(&with(json!({"sub": "../etc"}))),
            "`sub` claim is not a valid user id",
        ),
        (
            key.sign(&with(json!({"sub": null}))),
            "`sub` claim is not a valid user id",
        ),
        (other.sign(&claims("mallory")), "signature does not verify"),
        (hs256, "algorithm does not match"),
        (none, "not a well-formed JWT"),
        ("not.a.jwt".to_owned(), "not a well-formed JWT"),
    ];
    for (token, reason) in &cases {
        let r = send(&app, token_req(token, &pdf(10))).await;
        assert_refused(&r, token, reason);
    }
    // Within the 30 s leeway, time claims still pass.
    assert_eq!(
        send(
            &app,
            token_req(&key.sign(&with(json!({"exp": now - 29}))), &pdf(1))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        send(
            &app,
            token_req(&key.sign(&with(json!({"nbf": now + 29}))), &pdf(1))
        )
        .await
        .status,
        200
    );
    // None of the refused requests was charged: mallory has 3 left of 5
    // after the two leeway uploads... and no more was taken.
    let q = quota_with(&app, &key.sign(&claims("mallory"))).await;
    assert_eq!(q.body["limits"][0]["remaining"], json!(3), "{}", q.raw);

    // No token, a non-Bearer scheme, and a repeated header.
    let r = send(&app, upload_req("mallory", &pdf(1))).await;
    assert_eq!(r.status, 401);
    assert!(r.body["detail"].as_str().unwrap().contains("no token"));
    let basic = with_peer(
        Request::post("/v1/uploads")
            .header("authorization", "Basic bWFsbG9yeTpwdw==")
            .header("content-type", "application/json")
            .body(Body::from(pdf(1)))
            .unwrap(),
        "192.0.2.10",
    );
    assert_eq!(send(&app, basic).await.status, 401);
    let token = key.sign(&claims("mallory"));
    let twice = with_peer(
        Request::post("/v1/uploads")
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(pdf(1)))
            .unwrap(),
        "192.0.2.10",
    );
    let r = send(&app, twice).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(r.body["detail"].as_str().unwrap().contains("repeated"));
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_jwks_at_most_every_30_seconds() {
    let first = TestKey::ec("k1");
    let jwks = Jwks::serve(&[&first]).await;
    let env = jwt_env(("UPLOADGATE_JWKS_URL", &jwks.url), &[]);
    let clock = FakeClock::new(T0);
    let app = app_with(&env, MemoryStore::new(), clock.clone());
    assert_eq!(
        send(&app, token_req(&first.sign(&claims("ann")), &pdf(1)))
            .await
            .status,
        200
    );
    assert_eq!(jwks.fetches(), 1);

    // The issuer rotates in a new key: its first token triggers one refresh.
    clock.advance(Duration::from_secs(31));
    let second = TestKey::ed("k2");
    jwks.add(&second);
    assert_eq!(
        send(&app, token_req(&second.sign(&claims("ann")), &pdf(1)))
            .await
            .status,
        200
    );
    assert_eq!(jwks.fetches(), 2);

    // A flood of made-up kids within 30 s costs the issuer one request.
    clock.advance(Duration::from_secs(31));
    for i in 0..40 {
        let bogus = TestKey::ed(&format!("bogus-{i}"));
        let token = bogus.sign(&claims("ann"));
        let r = send(&app, token_req(&token, &pdf(1))).await;
        assert_refused(&r, &token, "a key the issuer does not publish");
        clock.advance(Duration::from_millis(500));
    }
    assert_eq!(jwks.fetches(), 3, "40 unknown kids in 20 s: one refresh");
    clock.advance(Duration::from_secs(11));
    let bogus = TestKey::ed("bogus-late");
    let token = bogus.sign(&claims("ann"));
    assert_eq!(send(&app, token_req(&token, &pdf(1))).await.status, 401);
    assert_eq!(jwks.fetches(), 4, "30 s later, one more");
    // Known keys never fetch.
    assert_eq!(
        send(&app, token_req(&first.sign(&claims("ann")), &pdf(1)))
            .await
            .status,
        200
    );
    assert_eq!(jwks.fetches(), 4);
}

#[tokio::test]
async fn when_the_issuer_is_down_known_keys_work_and_unknown_ones_are_401() {
    let known = TestKey::rsa("k1");
    let jwks = Jwks::serve(&[&known]).await;
    let env = jwt_env(("UPLOADGATE_JWKS_URL", &jwks.url), &[]);
    let clock = FakeClock::new(T0);
    let app = app_with(&env, MemoryStore::new(), clock.clone());
    assert_eq!(
        send(&app, token_req(&known.sign(&claims("ann")), &pdf(1)))
            .await
            .status,
        200
    );
    jwks.set_down(true);
    clock.advance(Duration::from_secs(60));
    let unknown = TestKey::rsa("k2");
    jwks.add(&unknown);
    let token = unknown.sign(&claims("ann"));
    let r = send(&app, token_req(&token, &pdf(1))).await;
    assert_refused(&r, &token, "a key the issuer does not publish");
    assert_eq!(
        send(&app, token_req(&known.sign(&claims("ann")), &pdf(1)))
            .await
            .status,
        200
    );
    // Back up: the new key works after the refresh interval.
    jwks.set_down(false);
    clock.advance(Duration::from_secs(31));
    assert_eq!(send(&app, token_req(&token, &pdf(1))).await.status, 200);
}

#[tokio::test]
async fn an_unreachable_issuer_is_401_not_5xx() {
    let key = TestKey::ed("k1");
    // Nothing listens on port 9 of loopback.
    let env = jwt_env(("UPLOADGATE_JWKS_URL", "http://127.0.0.1:9/jwks.json"), &[]);
    let app = app_with(&env, MemoryStore::new(), FakeClock::new(T0));
    let token = key.sign(&claims("ann"));
    let r = send(&app, token_req(&token, &pdf(1))).await;
    assert_refused(&r, &token, "a key the issuer does not publish");
}

#[tokio::test]
async fn cognito_access_tokens_use_client_id_and_token_use_is_enforced() {
    let key = TestKey::rsa("k1");
    let jwks = Jwks::serve(&[&key]).await;
    let env = jwt_env(
        ("UPLOADGATE_JWKS_URL", &jwks.url),
        &[("UPLOADGATE_JWT_TOKEN_USE", "access")],
    );
    let app = app_with(&env, MemoryStore::new(), FakeClock::new(T0));
    let now = T0.as_millis() / 1000;
    let access = json!({"iss": ISSUER, "client_id": CLIENT, "token_use": "access", "sub": "u-1", "exp": now + 60});
    assert_eq!(
        send(&app, token_req(&key.sign(&access), &pdf(1)))
            .await
            .status,
        200
    );
    let id =
        json!({"iss": ISSUER, "aud": CLIENT, "token_use": "id", "sub": "u-1", "exp": now + 60});
    let token = key.sign(&id);
    assert_refused(
        &send(&app, token_req(&token, &pdf(1))).await,
        &token,
        "not an access token",
    );
    let stranger = json!({"iss": ISSUER, "client_id": "other-client", "token_use": "access", "sub": "u-1", "exp": now + 60});
    let token = key.sign(&stranger);
    assert_refused(
        &send(&app, token_req(&token, &pdf(1))).await,
        &token,
        "another audience",
    );
}

#[tokio::test]
async fn a_caller_cannot_spend_another_users_quota_in_jwt_mode() {
    let key = TestKey::ec("k1");
    let jwks = Jwks::serve(&[&key]).await;
    let env = jwt_env(
        ("UPLOADGATE_JWKS_URL", &jwks.url),
        &[("UPLOADGATE_LIMITS", "uploads=user:2/1h")],
    );
    let app = app_with(&env, MemoryStore::new(), FakeClock::new(T0));
    let token = key.sign(&claims("eve"));
    for i in 0..3 {
        // A different x-user-id, a userId in the body, a forged XFF each
        // time: all ignored, eve's own quota pays.
        let req = Request::post("/v1/uploads")
            .header("authorization", format!("Bearer {token}"))
            .header("x-user-id", format!("victim-{i}"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .header("content-type", "application/json")
            .body(Body::from(format!(
                r#"{{"userId":"victim-{i}","filename":"a.pdf","contentType":"application/pdf","size":5}}"#
            )))
            .unwrap();
        let r = send(&app, with_peer(req, "192.0.2.10")).await;
        assert_eq!(r.status, if i < 2 { 200 } else { 429 }, "{}", r.raw);
        if i < 2 {
            assert!(r.body["key"].as_str().unwrap().starts_with("uploads/eve/"));
        }
    }
    // The victims were never charged.
    let victim = key.sign(&claims("victim-0"));
    assert_eq!(
        quota_with(&app, &victim).await.body["limits"][0]["remaining"],
        json!(2)
    );
}

#[tokio::test]
async fn behind_cloudfront_the_token_travels_in_another_header() {
    let key = TestKey::ed("k1");
    let jwks = Jwks::serve(&[&key]).await;
    let env = jwt_env(
        ("UPLOADGATE_JWKS_URL", &jwks.url),
        &[("UPLOADGATE_TOKEN_HEADER", "X-Upload-Token")],
    );
    let app = app_with(&env, MemoryStore::new(), FakeClock::new(T0));
    let token = key.sign(&claims("ann"));
    for value in [token.clone(), format!("Bearer {token}")] {
        let req = Request::post("/v1/uploads")
            // What origin access control puts there: not ours to read.
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKID/...")
            .header("x-upload-token", value)
            .header("content-type", "application/json")
            .body(Body::from(pdf(1)))
            .unwrap();
        assert_eq!(send(&app, with_peer(req, "192.0.2.10")).await.status, 200);
    }
    // CORS lets a browser send it.
    let env = jwt_env(
        ("UPLOADGATE_JWKS_URL", &jwks.url),
        &[
            ("UPLOADGATE_TOKEN_HEADER", "x-upload-token"),
            ("UPLOADGATE_CORS_ORIGINS", "https://app.example.com"),
        ],
    );
    let app = app_with(&env, MemoryStore::new(), FakeClock::new(T0));
    let pre = Request::options("/v1/uploads")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "x-upload-token,content-type",
        )
        .body(Body::empty())
        .unwrap();
    let r = send(&app, pre).await;
    let allowed = r.header("access-control-allow-headers").unwrap_or_default();
    assert!(allowed.contains("x-upload-token"), "{allowed}");
}
