//! The `jwt` phase: the same uploads as `memory`, but the caller is a
//! verified ES256 bearer token (`UPLOADGATE_IDENTITY=jwt` with a PEM key),
//! one token per user, minted before the run. And the in-process cost of
//! one verification, for the breakdown.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

pub(crate) const ISSUER: &str = "https://issuer.bench.example/pool";
pub(crate) const AUDIENCE: &str = "bench-client";

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh P-256 key: its public PEM written to `dir/issuer.pem` (for
/// `UPLOADGATE_JWT_PUBLIC_KEY`), and `users` tokens, `sub` = `user-<n>`.
pub(crate) fn tokens(dir: &Path, users: u64) -> (std::path::PathBuf, Arc<Vec<String>>) {
    let rng = SystemRandom::new();
    let doc =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key pair");
    let kp =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).expect("key pair");
    let public = pem(
        "PUBLIC KEY",
        kp.public_key().as_der().expect("der").as_ref(),
    );
    let path = dir.join("issuer.pem");
    std::fs::write(&path, public).expect("write the public key");
    let key = EncodingKey::from_ec_pem(pem("PRIVATE KEY", doc.as_ref()).as_bytes())
        .expect("encoding key");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        + 86_400;
    let tokens = (0..users)
        .map(|n| {
            let claims = serde_json::json!({
                "iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{n}"), "exp": exp,
            });
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).expect("token")
        })
        .collect();
    (path, Arc::new(tokens))
}
