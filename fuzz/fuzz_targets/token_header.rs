//! Finding the bearer token in a request's headers
//! (`JwtVerifier::token`), then `jsonwebtoken::decode_header` and a full
//! `verify` of what it finds, against a fixed Ed25519 test key.
//!
//! The input is a list of headers, one `name: value` per line (names that
//! are not header names, and values that are not header values, are
//! skipped, as `http` would never build them). Both token headers are
//! tried: `Authorization` (where `Bearer` is required) and a custom one
//! (where it is optional).
//!
//! Checked: the outcome depends on the token header's values only; no
//! value is missing, two are repeated; a token found is the non-empty,
//! trimmed rest of the one value; verification never panics and never
//! accepts (the fuzzer cannot sign with the test key), and its refusal is
//! a 401 with a `WWW-Authenticate` challenge that never quotes the token.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use uploadgate_fuzz::{check_message, ready, verifier};
use uploadgate_http::ApiError;
use uploadgate_http::token::{JwtVerifier, TokenError};

static VERIFIERS: LazyLock<[JwtVerifier; 2]> = LazyLock::new(|| {
    [
        verifier(header::AUTHORIZATION),
        verifier(HeaderName::from_static("x-upload-token")),
    ]
});

fn headers(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // `name: value`, as written in a seed.
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

/// `text` starts with the scheme `Bearer` and a space, in any case.
fn bearer_rest(text: &str) -> Option<&str> {
    let scheme = text.get(..7)?;
    scheme
        .eq_ignore_ascii_case("bearer ")
        .then(|| text[7..].trim())
}

fn check(v: &JwtVerifier, all: &HeaderMap) {
    let name = v.header().clone();
    let values: Vec<&HeaderValue> = all.get_all(&name).iter().collect();
    let found = v.token(all);

    // Only the token header counts.
    let mut only = HeaderMap::new();
    for value in &values {
        only.append(name.clone(), (*value).clone());
    }
    assert_eq!(v.token(&only), found, "other headers changed the outcome");

    let token = match (&found, values.as_slice()) {
        (Err(TokenError::Missing(n)), []) => {
            assert_eq!(*n, name);
            return;
        }
        (Err(TokenError::Repeated(n)), [_, _, ..]) => {
            assert_eq!(*n, name);
            return;
        }
        (_, []) => panic!("no `{name}` header, yet {found:?}"),
        (_, [_, _, ..]) => panic!("repeated `{name}` header, yet {found:?}"),
        (Err(e), [value]) => {
            let text = value.to_str().map(str::trim);
            match (e, text) {
                (TokenError::Malformed, Err(_)) => {}
                (TokenError::Malformed, Ok(t)) => {
                    assert!(
                        name == header::AUTHORIZATION && bearer_rest(t).is_none(),
                        "{t:?} refused as malformed"
                    );
                }
                (TokenError::Missing(_), Ok(t)) => {
                    let rest = bearer_rest(t).unwrap_or(t);
                    assert!(rest.is_empty(), "{t:?}: a token was there");
                }
                (e, t) => panic!("{t:?}: unexpected {e:?}"),
            }
            return;
        }
        (Ok(token), [value]) => {
            let text = value
                .to_str()
                .expect("a token comes from a text value")
                .trim();
            assert!(!token.is_empty());
            assert_eq!(*token, token.trim(), "the token is not trimmed");
            match bearer_rest(text) {
                Some(rest) => assert_eq!(*token, rest),
                None => {
                    assert_ne!(name, header::AUTHORIZATION, "no Bearer scheme");
                    assert_eq!(*token, text);
                }
            }
            *token
        }
    };

    // jsonwebtoken on whatever the client sent.
    let _ = jsonwebtoken::decode_header(token);
    let refusal = match ready(v.verify(token)) {
        Ok(verified) => panic!("accepted a token the fuzzer made: {verified:?} from {token:?}"),
        Err(e) => e,
    };
    let message = refusal.to_string();
    check_message(&message, 256);
    if quotable(token) {
        assert!(!message.contains(token), "the message quotes the token");
    }
    let response = axum_response(refusal);
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("a 401 carries a WWW-Authenticate challenge");
    let challenge = challenge.to_str().expect("visible ASCII");
    assert!(challenge.starts_with("Bearer error=\"invalid_token\""));
    if quotable(token) {
        assert!(!challenge.contains(token), "the challenge quotes the token");
    }
}

/// Every refusal message of `verify` and of finding the token
/// (`TokenError`, with this target's header names).
const MESSAGES: [&str; 14] = [
    "no token: send it in the `authorization` header",
    "no token: send it in the `x-upload-token` header",
    "the `authorization` header is repeated",
    "the `x-upload-token` header is repeated",
    "the token is not a well-formed JWT signed with RS256, ES256 or EdDSA",
    "the token's algorithm does not match the issuer's key",
    "the token is signed with a key the issuer does not publish",
    "the token names no key (`kid`) and the issuer has several",
    "the token's signature does not verify",
    "the token has no expiry (`exp`)",
    "the token has expired",
    "the token is not valid yet",
    "the token is from another issuer",
    "the token is for another audience",
];

/// Whether a message or challenge that contains `token` quotes it: a token
/// of 8 bytes or more that is not part of a fixed message or its challenge
/// (the fuzzer finds `JWT signed with RS256` and the like).
fn quotable(token: &str) -> bool {
    token.len() >= 8
        && !MESSAGES.iter().any(|m| {
            format!("Bearer error=\"invalid_token\", error_description=\"{m}\"").contains(token)
        })
}

fn axum_response(e: TokenError) -> http::Response<axum::body::Body> {
    use axum::response::IntoResponse;
    ApiError::InvalidToken(e).into_response()
}

fuzz_target!(|data: &[u8]| {
    let all = headers(data);
    for v in VERIFIERS.iter() {
        check(v, &all);
    }
});
