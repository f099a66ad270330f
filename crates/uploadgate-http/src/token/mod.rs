//! Verified identity: a bearer JWT (Cognito or any OIDC issuer), checked
//! with `jsonwebtoken` against the issuer's public keys ([`keys`]).
//!
//! The signature, the algorithm and the issuer are the library's checks;
//! the rest is policy and lives here: `exp` is required and, with `nbf`,
//! judged against the injected [`Clock`] with a bounded leeway; the audience
//! is `aud`, or Cognito's `client_id` (Cognito access tokens carry no
//! `aud`); `token_use` optionally pins Cognito's `access` or `id`; the user
//! is `sub` or a configured claim, and must pass [`UserId::parse`]. The
//! algorithm is the key's own (RS256, ES256 or EdDSA), so `alg: none`, and
//! HS256 keyed with the public key, never verify.
//!
//! **Which header.** The token travels in `Authorization: Bearer ...` by
//! default. Behind CloudFront with origin access control, CloudFront signs
//! every origin request and overwrites `Authorization`; there the token must
//! travel in another header (`UPLOADGATE_TOKEN_HEADER`, e.g.
//! `x-upload-token`), where a bare token or `Bearer <token>` is accepted.
//!
//! Errors name the reason (never the token) and become 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`; a repeated header is a
//! malformed request (400). Nothing is charged before a token verifies.

pub mod keys;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::{Map, Value};
use uploadgate_core::{Clock, UserId};

pub use keys::{KeyCache, KeySource, PublicKey};

/// How tokens are checked (from the `UPLOADGATE_JWT_*` settings).
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// Accepted audiences: a token's `aud` (or `client_id`) must name one.
    pub audiences: Vec<String>,
    /// Where the public keys come from.
    pub keys: KeySource,
    /// If set, the required `token_use` (Cognito: `access` or `id`).
    pub token_use: Option<String>,
    /// The claim that holds the user id (`sub` by default).
    pub user_claim: String,
    /// The claim whose value selects a quota tier, if any.
    pub tier_claim: Option<String>,
    /// Clock skew allowed on `exp` and `nbf` (at most 60 s).
    pub leeway: Duration,
    /// The header that carries the token.
    pub header: HeaderName,
}

/// Why a token was refused. The message is safe to show: it never quotes
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token was sent.
    #[error("no token: send it in the `{0}` header")]
    Missing(HeaderName),
    /// The header was sent more than once.
    #[error("the `{0}` header is repeated")]
    Repeated(HeaderName),
    /// Not a JWT, or a header without a supported algorithm.
    #[error("the token is not a well-formed JWT signed with RS256, ES256 or EdDSA")]
    Malformed,
    /// The token's algorithm is not its key's.
    #[error("the token's algorithm does not match the issuer's key")]
    WrongAlgorithm,
    /// No known key has the token's `kid`.
    #[error("the token is signed with a key the issuer does not publish")]
    UnknownKey,
    /// The token names no `kid` and the issuer has several keys.
    #[error("the token names no key (`kid`) and the issuer has several")]
    NoKeyId,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is missing or not a number.
    #[error("the token has no expiry (`exp`)")]
    NoExpiry,
    /// `exp` is past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is missing or another issuer's.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// Neither `aud` nor `client_id` names an accepted audience.
    #[error("the token is for another audience")]
    WrongAudience,
    /// `token_use` is not the required one.
    #[error("the token is not an {0} token")]
    WrongTokenUse(String),
    /// The user claim is missing or not a valid user id.
    #[error("the token's `{claim}` claim is not a valid user id: {why}")]
    BadUser {
        /// The claim.
        claim: String,
        /// Why.
        why: String,
    },
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user.
    pub user: UserId,
    /// The tier claim's values, in order (empty without one).
    pub tiers: Vec<String>,
}

/// Verifies tokens. Build once at start-up; cheap to share.
pub struct JwtVerifier {
    config: JwtConfig,
    keys: Arc<KeyCache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("config", &self.config)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `config`, judging time by `clock`.
    pub fn new(config: JwtConfig, clock: Arc<dyn Clock>) -> Self {
        let keys = Arc::new(KeyCache::new(config.keys.clone(), Arc::clone(&clock)));
        JwtVerifier {
            config,
            keys,
            clock,
        }
    }

    /// The header that carries the token.
    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }

    /// Fetches the issuer's keys now (start-up), so the first request does
    /// not wait for them. A failure is logged and retried on demand.
    pub async fn warm_up(&self) {
        self.keys.warm_up().await;
    }

    /// The token in `headers`: the whole value of the token header, without
    /// a `Bearer ` scheme (required for `Authorization`).
    pub fn token<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, TokenError> {
        let name = &self.config.header;
        let mut values = headers.get_all(name).iter();
        let value = values
            .next()
            .ok_or_else(|| TokenError::Missing(name.clone()))?;
        if values.next().is_some() {
            return Err(TokenError::Repeated(name.clone()));
        }
        let text = value.to_str().map_err(|_| TokenError::Malformed)?.trim();
        let bearer = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match bearer {
            Some(token) => Ok(token),
            None if *name == http::header::AUTHORIZATION => Err(TokenError::Malformed),
            None => Ok(text),
        }
        .and_then(|t| {
            if t.is_empty() {
                Err(TokenError::Missing(name.clone()))
            } else {
                Ok(t)
            }
        })
    }

    /// Verifies `token`: signature, algorithm, issuer, time, audience,
    /// `token_use`, and the user claim.
    pub async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = self
            .keys
            .get(header.kid.as_deref())
            .await
            .map_err(|m| match m {
                keys::Missing::UnknownKid => TokenError::UnknownKey,
                keys::Missing::NoKid => TokenError::NoKeyId,
            })?;
        if header.alg != key.algorithm {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.algorithm);
        // Time and audience are judged below: against the injected clock,
        // and accepting Cognito's `client_id` for `aud`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss"]);
        validation.set_issuer(&[&self.config.issuer]);
        let claims = decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidIssuer | ErrorKind::MissingRequiredClaim(_) => {
                    TokenError::WrongIssuer
                }
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Malformed,
            })?
            .claims;
        self.check_time(&claims)?;
        self.check_audience(&claims)?;
        if let Some(want) = &self.config.token_use
            && claims.get("token_use").and_then(Value::as_str) != Some(want)
        {
            return Err(TokenError::WrongTokenUse(want.clone()));
        }
        let claim = &self.config.user_claim;
        let user = match claims.get(claim) {
            Some(Value::String(s)) => UserId::parse(s).map_err(|e| e.to_string()),
            Some(_) => Err("it is not a string".to_owned()),
            None => Err("it is missing".to_owned()),
        }
        .map_err(|why| TokenError::BadUser {
            claim: claim.clone(),
            why,
        })?;
        let tiers = match self.config.tier_claim.as_ref().and_then(|c| claims.get(c)) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Verified { user, tiers })
    }

    fn check_time(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let now = self.clock.now().as_millis() as f64 / 1000.0;
        let leeway = self.config.leeway.as_secs_f64();
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(TokenError::NoExpiry)?;
        if now > exp + leeway {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = claims.get("nbf")
            && nbf.as_f64().is_none_or(|nbf| nbf > now + leeway)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let accepted = |v: &Value| {
            v.as_str()
                .is_some_and(|a| self.config.audiences.iter().any(|w| w == a))
        };
        let by_aud = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(accepted),
            Some(one) => accepted(one),
            None => false,
        };
        if by_aud || claims.get("client_id").is_some_and(accepted) {
            Ok(())
        } else {
            Err(TokenError::WrongAudience)
        }
    }
}
