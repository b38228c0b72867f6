//! Bearer tokens for the mutating endpoints, and request bodies parsed with the path of the
//! field that is wrong.

use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::ApiError;

/// Shortest token accepted from a file or the environment: a guessable token is refused.
pub const MIN_TOKEN_LEN: usize = 16;

/// The token the mutating endpoints ask for; `None` turns them off.
#[derive(Clone, Default)]
pub struct Token(Option<Vec<u8>>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never printed.
        f.write_str(if self.0.is_some() {
            "Token(set)"
        } else {
            "Token(none)"
        })
    }
}

/// A token that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {reason}")]
pub struct TokenError {
    /// Where the token came from.
    pub source_name: String,
    /// Why it is refused.
    pub reason: String,
}

impl Token {
    /// No token: mutating endpoints answer 403.
    pub fn none() -> Self {
        Token(None)
    }

    /// A token read from `source_name` (a file or a variable), trimmed of surrounding
    /// whitespace; refused when shorter than [`MIN_TOKEN_LEN`] or not visible ASCII.
    pub fn new(text: &str, source_name: &str) -> Result<Self, TokenError> {
        let t = text.trim();
        let bad = |reason: String| TokenError {
            source_name: source_name.to_string(),
            reason,
        };
        if t.len() < MIN_TOKEN_LEN {
            return Err(bad(format!(
                "a token needs at least {MIN_TOKEN_LEN} characters, this one has {}",
                t.len()
            )));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("a token is visible ASCII without spaces".into()));
        }
        Ok(Token(Some(t.as_bytes().to_vec())))
    }

    /// Whether mutating endpoints are on.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Checks `Authorization: Bearer TOKEN` in constant time.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(want) = &self.0 else {
            return Err(ApiError::Disabled);
        };
        let got = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated)?;
        if bool::from(got.trim().as_bytes().ct_eq(want)) {
            Ok(())
        } else {
            Err(ApiError::WrongToken)
        }
    }
}

/// Parses a JSON body; an error names the path of the field where parsing stopped.
///
/// A body that parses takes the plain parser; only a failed one is parsed again with the path
/// tracked (the same input fails at the same place): tracking took about a quarter of the
/// server's time on `/v1/predict`'s 64 KiB bodies (docs/benchmarks.md).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(_) => parse_body_tracked(bytes),
    }
}

/// [`parse_body`] with the path of the failing field tracked.
fn parse_body_tracked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::Malformed {
            field: if path == "." || path == "?" || path.is_empty() {
                "body".into()
            } else {
                path
            },
            reason: graphscale_core::error::quote(&e.into_inner().to_string()),
        }
    })?;
    de.end().map_err(|e| ApiError::Malformed {
        field: "body".into(),
        reason: e.to_string(),
    })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_short_ones_refused() {
        assert!(Token::new("short", "f")
            .unwrap_err()
            .to_string()
            .contains("at least 16"));
        assert!(Token::new("has a space in it ok", "f").is_err());
        let t = Token::new("  0123456789abcdef\n", "f").unwrap();
        let mut h = HeaderMap::new();
        assert!(matches!(t.check(&h), Err(ApiError::Unauthenticated)));
        h.insert("authorization", "Bearer 0123456789abcdeX".parse().unwrap());
        assert!(matches!(t.check(&h), Err(ApiError::WrongToken)));
        h.insert("authorization", "Bearer 0123456789abcdef".parse().unwrap());
        assert!(t.check(&h).is_ok());
        h.insert("authorization", "Basic 0123456789abcdef".parse().unwrap());
        assert!(matches!(t.check(&h), Err(ApiError::Unauthenticated)));
        assert!(matches!(Token::none().check(&h), Err(ApiError::Disabled)));
        assert_eq!(format!("{t:?}"), "Token(set)");
    }

    #[test]
    fn body_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            a: Vec<u32>,
        }
        let e = parse_body::<B>(br#"{"a": [1, "x"]}"#).unwrap_err();
        assert_eq!(e.field(), Some("a[1]"), "{e}");
        let e = parse_body::<B>(br#"{"b": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `b`"), "{e}");
        let e = parse_body::<B>(br#"{"a": []} x"#).unwrap_err();
        assert_eq!(e.field(), Some("body"));
    }
}
