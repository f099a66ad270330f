//! Request bodies: read with a size bound, deserialized into typed requests.
//! Field errors name the field by its JSON path (`serde_path_to_error`), so
//! a client learns exactly what to fix; nothing here matches JSON by hand.

use std::fmt;

use axum::body::Body;
use bytes::Bytes;
use http::header;
use http::request::Parts;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, Visitor};

use crate::error::ApiError;

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest message a body's `400` carries, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256;

/// Longest content type a client may declare: a media type's type and
/// subtype are at most 127 characters each (RFC 6838), and an allowed
/// type is never more than that.
const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// Longest file name a client may declare (it is sanitized and cut to 100
/// bytes for the key; this only bounds what is read).
const MAX_FILENAME_BYTES: usize = 1024;

/// Reads a body of at most [`MAX_BODY_BYTES`], refusing a larger declared
/// `Content-Length` before reading anything.
pub(crate) async fn read_body(parts: &Parts, body: Body) -> Result<Bytes, ApiError> {
    let too_big = ApiError::BodyTooLarge {
        max: MAX_BODY_BYTES,
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_big);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_big)
}

/// Refuses a body that is not declared `application/json` (or a `+json`
/// type), before reading it: a form or `text/plain` POST is what a
/// cross-site page can send without a preflight, so accepting it would let
/// any page burn a visitor's quota where an upstream derives identity from
/// a cookie.
pub(crate) fn require_json(parts: &Parts) -> Result<(), ApiError> {
    let declared = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedBody {
            got: if declared.is_empty() {
                "none".to_owned()
            } else {
                essence
            },
        })
    }
}

/// Deserializes a JSON object body into `T`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |e: &dyn fmt::Display| bad_request(format!("the request body is not valid JSON: {e}"));
    // JSON is UTF-8 (RFC 8259). serde_json only checks the strings it
    // keeps, so a field that is ignored could otherwise carry any bytes.
    let text = std::str::from_utf8(bytes).map_err(|e| invalid(&e))?;
    let not_object = || ApiError::BadRequest("the request body must be a JSON object".into());
    match text.bytes().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(not_object()),
        // A JSON array would deserialize into a struct by position.
        Some(b'{') => {}
        Some(_) => {
            return match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => Err(not_object()),
                Err(e) => Err(invalid(&e)),
            };
        }
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return invalid(inner);
        }
        let shown = inner.to_string();
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        let message = shown.strip_suffix(&position).unwrap_or(&shown);
        bad_request(format!("`{}`: {message}", e.path()))
    })?;
    // The object must be all there is (`serde_json::from_str` checks this;
    // the deserializer alone stops after the object).
    de.end().map_err(|e| invalid(&e))?;
    Ok(value)
}

/// A `400` whose message is cut to [`MAX_MESSAGE_BYTES`]: serde quotes a
/// value of the wrong type whole (a string, or a float's every digit), and
/// a body may be 16 KiB.
fn bad_request(mut message: String) -> ApiError {
    const MORE: char = '…';
    if message.len() > MAX_MESSAGE_BYTES {
        let cut = message.floor_char_boundary(MAX_MESSAGE_BYTES - MORE.len_utf8());
        message.truncate(cut);
        message.push(MORE);
    }
    ApiError::BadRequest(message)
}

/// The body of `POST /v1/uploads` and `POST /upload-check`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadRequest {
    /// The file's name; only its sanitized last segment reaches the key.
    #[serde(default)]
    pub(crate) filename: Option<Filename>,
    /// The declared content type, lower case.
    #[serde(default)]
    pub(crate) content_type: Option<ContentType>,
    /// The declared size in bytes.
    #[serde(default)]
    pub(crate) size: Option<Size>,
    /// The file's SHA-256, base64 (S3's `x-amz-checksum-sha256`), to bind
    /// the URL to these exact bytes.
    #[serde(default)]
    pub(crate) checksum_sha256: Option<Checksum>,
}

/// A base64 SHA-256 digest (exactly 32 bytes).
#[derive(Debug)]
pub(crate) struct Checksum(pub(crate) uploadgate_s3::ChecksumSha256);

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        uploadgate_s3::ChecksumSha256::parse(&s)
            .map(Checksum)
            .map_err(|_| {
                de::Error::custom("must be the base64 SHA-256 of the file (44 characters)")
            })
    }
}

/// A file name of at most [`MAX_FILENAME_BYTES`].
#[derive(Debug)]
pub(crate) struct Filename(pub(crate) String);

impl<'de> Deserialize<'de> for Filename {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > MAX_FILENAME_BYTES {
            return Err(de::Error::custom(format!(
                "longer than {MAX_FILENAME_BYTES} bytes"
            )));
        }
        Ok(Filename(s))
    }
}

/// A content type as declared, trimmed and lower case, of at most
/// [`MAX_CONTENT_TYPE_BYTES`].
#[derive(Debug)]
pub(crate) struct ContentType(pub(crate) String);

impl<'de> Deserialize<'de> for ContentType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?.trim().to_ascii_lowercase();
        // Refused here, not echoed in a 415.
        if s.len() > MAX_CONTENT_TYPE_BYTES {
            return Err(de::Error::custom(format!(
                "longer than {MAX_CONTENT_TYPE_BYTES} bytes"
            )));
        }
        Ok(ContentType(s))
    }
}

/// A size: a whole number of bytes, at least 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size(pub(crate) u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                match v {
                    0 => Err(E::custom("must be at least 1 byte")),
                    v => Ok(Size(v)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom("must be positive")),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Size, E> {
                // JSON has one number type: `1.0` (and `1e3`) is a whole
                // number, as JSON Schema's `integer` says and the document
                // promises. Beyond u64 it saturates, and is too large.
                if v.fract() == 0.0 && v >= 0.0 {
                    return self.visit_u64(v as u64);
                }
                Err(E::custom(if v < 0.0 {
                    "must be positive"
                } else {
                    "must be a whole number of bytes"
                }))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> String {
        match parse::<UploadRequest>(body.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn field_errors_name_the_field() {
        assert_eq!(message(r#"{"size":0}"#), "`size`: must be at least 1 byte");
        assert_eq!(message(r#"{"size":-3}"#), "`size`: must be positive");
        assert_eq!(
            message(r#"{"size":1.5}"#),
            "`size`: must be a whole number of bytes"
        );
        assert_eq!(
            message(r#"{"size":0.0}"#),
            "`size`: must be at least 1 byte"
        );
        assert_eq!(message(r#"{"size":-2.0}"#), "`size`: must be positive");
        assert_eq!(
            message(r#"{"size":"12"}"#),
            "`size`: invalid type: string \"12\", expected a whole number of bytes"
        );
        assert_eq!(
            message(r#"{"contentType":5}"#),
            "`contentType`: invalid type: integer `5`, expected a string"
        );
        let long = format!(r#"{{"filename":"{}"}}"#, "a".repeat(1025));
        assert_eq!(message(&long), "`filename`: longer than 1024 bytes");
    }

    #[test]
    fn bodies_must_be_json_objects() {
        for body in ["", "  ", "[1,2]", "5", "\"x\""] {
            assert_eq!(
                message(body),
                "the request body must be a JSON object",
                "{body:?}"
            );
        }
        assert!(message("{\"size\":").starts_with("the request body is not valid JSON"));
        assert!(message("nope").starts_with("the request body is not valid JSON"));
    }

    /// Found by the `upload_body` fuzz target: bodies that are not JSON,
    /// and messages that quoted a whole value.
    #[test]
    fn only_a_json_object_is_taken() {
        assert!(parse::<UploadRequest>(b"{\"size\":1} \r\n").is_ok());
        for body in [
            &b"{\"size\":1} x"[..],
            b"{\"size\":1}{}",
            b"{\"x\":\"\xff\"}",
        ] {
            match parse::<UploadRequest>(body) {
                Err(ApiError::BadRequest(m)) => {
                    assert!(m.starts_with("the request body is not valid JSON"), "{m}")
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn messages_are_bounded() {
        let long = format!(r#"{{"size":"{}"}}"#, "é".repeat(2000));
        let m = message(&long);
        assert!(m.len() <= MAX_MESSAGE_BYTES, "{}", m.len());
        assert!(m.starts_with("`size`: invalid type: string \"éé"), "{m}");
        assert!(m.ends_with('…'), "{m}");
        let m = message(r#"{"filename":1e300}"#);
        assert!(m.len() <= MAX_MESSAGE_BYTES, "{m}");
        let ct = format!(r#"{{"contentType":"{}/pdf"}}"#, "x".repeat(300));
        assert_eq!(message(&ct), "`contentType`: longer than 255 bytes");
        let ct = format!(
            r#"{{"contentType":"{}/{}"}}"#,
            "x".repeat(127),
            "y".repeat(127)
        );
        assert!(parse::<UploadRequest>(ct.as_bytes()).is_ok());
    }

    #[test]
    fn unknown_fields_and_nulls_are_ignored() {
        let r: UploadRequest =
            parse(br#"{"filename":null,"contentType":" Application/PDF ","size":7,"x":[1]}"#)
                .unwrap();
        assert!(r.filename.is_none());
        assert_eq!(r.content_type.unwrap().0, "application/pdf");
        assert_eq!(r.size.unwrap().0, 7);
    }

    #[test]
    fn whole_numbers_written_as_floats_are_sizes() {
        let size = |body: &str| {
            parse::<UploadRequest>(body.as_bytes())
                .unwrap()
                .size
                .unwrap()
                .0
        };
        assert_eq!(size(r#"{"size":129068109450.0}"#), 129_068_109_450);
        assert_eq!(size(r#"{"size":1e3}"#), 1000);
        // Past u64 (a float to serde_json), it saturates: too large, not malformed.
        assert_eq!(size(r#"{"size":1e30}"#), u64::MAX);
        assert_eq!(size(r#"{"size":18446744073709551616}"#), u64::MAX);
    }
}
