//! What the fuzz targets share: the checks every error message must pass,
//! a JWT verifier over a fixed test key, and a way to run the verifier's
//! futures, which never wait with a static key, without a runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::HeaderName;
use uploadgate_core::{FakeClock, Timestamp};
use uploadgate_http::token::{JwtConfig, JwtVerifier, KeySource, PublicKey};

/// "Now" for the token targets: 2027-01-15T08:00:00Z, as in the tests.
pub const NOW: Timestamp = Timestamp(1_800_000_000_000);
/// The verifier's issuer.
pub const ISSUER: &str = "https://issuer.example.com/pool-1";
/// The verifier's one audience.
pub const AUDIENCE: &str = "app-client-1";
/// The `token_use` the verifier requires.
pub const TOKEN_USE: &str = "access";
/// The claim that names a tier.
pub const TIER_CLAIM: &str = "custom:plan";
/// The clock skew the verifier allows.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// An Ed25519 key made for these targets with `openssl genpkey`; it signs
/// nothing but fuzz inputs.
pub const TEST_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMgtX7jqLZQm0gpUWxUhP8LNCy8Gd7IY1ykONIfOexPG
-----END PRIVATE KEY-----
";
/// The public half of [`TEST_PRIVATE_PEM`].
pub const TEST_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA9FKomOh/JJRDizYZRMmzhgEXkkI9W7iF1SoZv8qhpWE=
-----END PUBLIC KEY-----
";

/// A verifier as `UPLOADGATE_IDENTITY=jwt` builds it, reading the token
/// from `header`, checking against the fixed test key at [`NOW`].
pub fn verifier(header: HeaderName) -> JwtVerifier {
    let key = PublicKey::from_pem(TEST_PUBLIC_PEM.as_bytes()).expect("the test key parses");
    let config = JwtConfig {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        keys: KeySource::Static(key),
        token_use: Some(TOKEN_USE.into()),
        user_claim: "sub".into(),
        tier_claim: Some(TIER_CLAIM.into()),
        leeway: LEEWAY,
        header,
    };
    JwtVerifier::new(config, Arc::new(FakeClock::new(NOW)))
}

/// Runs a future that must not wait (the verifier with a static key).
pub fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the future waited, and nothing here can wake it"),
    }
}

/// An error message as a client or an operator reads it: not empty, at
/// most `max` bytes, one line with no control characters (a log line or a
/// terminal shows it as is).
pub fn check_message(message: &str, max: usize) {
    assert!(!message.is_empty(), "empty error message");
    assert!(
        message.len() <= max,
        "error message of {} bytes (max {max}): {message:.300}",
        message.len()
    );
    assert!(
        !message.chars().any(char::is_control),
        "error message with a control character: {message:?}"
    );
}
