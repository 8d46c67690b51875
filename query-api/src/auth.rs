//! Bearer tokens and roles (`INVENTORY_API_TOKENS`).
//!
//! The configuration holds only SHA-256 hashes of the tokens, never the tokens themselves:
//!
//! ```text
//! INVENTORY_API_TOKENS=viewer:<sha256 hex of token A>,writer:<sha256 hex of token B>
//! ```
//!
//! - Entries are separated by commas; whitespace around entries is ignored; an empty value
//!   configures no tokens.
//! - Each entry is `<role>:<64 hex digits>`; the role is `viewer` (read) or `writer` (read and
//!   declare monitoring endpoints). Hex digits may be upper or lower case.
//! - Reads are open unless at least one `viewer` token is configured; then every read needs a
//!   viewer or writer token. Writes always need a writer token.
//! - A token's hash is produced with e.g. `printf %s "$TOKEN" | sha256sum`.
//!
//! Errors name the entry's position (1-based), never its content.

use std::fmt;

use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;
use sha2::{Digest, Sha256};

use crate::problem::{ErrorCode, ServiceError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Writer,
}

/// A configuration error (one line, naming the setting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("INVENTORY_API_TOKENS entry {position}: {reason}")]
    Token {
        position: usize,
        reason: &'static str,
    },
}

/// The configured tokens (hashes and roles).
#[derive(Clone, Default)]
pub struct TokenSet {
    entries: Vec<(Role, [u8; 32])>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("viewers", &self.count(Role::Viewer))
            .field("writers", &self.count(Role::Writer))
            .finish()
    }
}

/// Who made a request: the role and a non-secret identifier of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// `token:<first 8 hex digits of the token's SHA-256>`.
    pub id: String,
}

impl TokenSet {
    /// Parses `INVENTORY_API_TOKENS` (see the module documentation for the format).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let mut entries: Vec<(Role, [u8; 32])> = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { entries });
        }
        for (i, raw) in s.split(',').enumerate() {
            let position = i + 1;
            let err = |reason| ConfigError::Token { position, reason };
            let entry = raw.trim();
            if entry.is_empty() {
                return Err(err("empty entry (expected role:sha256hex)"));
            }
            let (role, hash) = entry
                .split_once(':')
                .ok_or_else(|| err("expected role:sha256hex"))?;
            let role = match role.trim() {
                "viewer" => Role::Viewer,
                "writer" => Role::Writer,
                _ => return Err(err("role must be viewer or writer")),
            };
            let hash = hash.trim();
            if hash.len() != 64 {
                return Err(err(
                    "the hash must be 64 hex digits (the SHA-256 of the token, not the token)",
                ));
            }
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hash, &mut digest).map_err(|_| {
                err("the hash must be 64 hex digits (the SHA-256 of the token, not the token)")
            })?;
            if entries.iter().any(|(_, d)| *d == digest) {
                return Err(err("repeats the hash of an earlier entry"));
            }
            entries.push((role, digest));
        }
        Ok(Self { entries })
    }

    /// A set from plain tokens (tests and tools; the hashes are computed here).
    pub fn from_tokens(tokens: &[(Role, &str)]) -> Self {
        Self {
            entries: tokens.iter().map(|(r, t)| (*r, hash_token(t))).collect(),
        }
    }

    /// Number of tokens with `role`.
    pub fn count(&self, role: Role) -> usize {
        self.entries.iter().filter(|(r, _)| *r == role).count()
    }

    /// Whether reads need a token (at least one viewer token is configured).
    pub fn reads_need_token(&self) -> bool {
        self.count(Role::Viewer) > 0
    }

    /// The principal of a presented token, comparing hashes in constant time.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let digest = hash_token(token);
        let mut found: Option<Role> = None;
        // Compare with every entry, without early exit, so timing does not reveal which matched.
        for (role, candidate) in &self.entries {
            if constant_time_eq(candidate, &digest) {
                found = Some(*role);
            }
        }
        found.map(|role| Principal {
            role,
            id: format!("token:{}", &hex::encode(digest)[..8]),
        })
    }

    /// Checks a read: open without viewer tokens, else a viewer or writer token.
    pub fn authorize_read(&self, token: Option<&str>) -> Result<Option<Principal>, ServiceError> {
        match token {
            Some(t) => match self.authenticate(t) {
                Some(p) => Ok(Some(p)),
                None if self.reads_need_token() => Err(unauthenticated()),
                // Reads are open: an unknown token is not a reason to refuse them.
                None => Ok(None),
            },
            None if self.reads_need_token() => Err(unauthenticated()),
            None => Ok(None),
        }
    }

    /// Checks a write: a writer token (401 without or with an unknown one, 403 for a viewer).
    pub fn authorize_write(&self, token: Option<&str>) -> Result<Principal, ServiceError> {
        let principal = token
            .and_then(|t| self.authenticate(t))
            .ok_or_else(unauthenticated)?;
        if principal.role < Role::Writer {
            return Err(ServiceError::new(
                ErrorCode::Forbidden,
                "this operation needs a writer token; the presented token is a viewer token",
            ));
        }
        Ok(principal)
    }
}

impl TokenSet {
    /// Decides a request that carries a body before any of it is read, so that nobody without
    /// the right token makes the server receive a body: `GET`, `HEAD` and `OPTIONS` as reads,
    /// every other method as a write ([`authorize_write`](Self::authorize_write)). The endpoint
    /// checks again with the same rules.
    pub fn authorize_body(
        &self,
        method: &poem::http::Method,
        token: Option<&str>,
    ) -> Result<(), ServiceError> {
        use poem::http::Method;
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            self.authorize_read(token).map(drop)
        } else {
            self.authorize_write(token).map(drop)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), if any.
pub fn bearer_token(headers: &poem::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthenticated() -> ServiceError {
    ServiceError::new(
        ErrorCode::Unauthenticated,
        "a valid bearer token is required (Authorization: Bearer <token>)",
    )
}

fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A bearer token listed in `INVENTORY_API_TOKENS` (viewer or writer).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "bearerToken")]
pub struct BearerToken(pub Bearer);

/// A bearer token where reads may be open (no viewer token configured).
#[derive(SecurityScheme)]
pub enum OptionalBearer {
    Token(BearerToken),
    #[oai(fallback)]
    Anonymous,
}

impl OptionalBearer {
    /// The presented token, if any.
    pub fn token(&self) -> Option<&str> {
        match self {
            Self::Token(t) => Some(t.0.token.as_str()),
            Self::Anonymous => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(t: &str) -> String {
        hex::encode(hash_token(t))
    }

    #[test]
    fn parses_roles_and_hashes() {
        let s = format!(" viewer:{} ,writer:{}", h("a"), h("b").to_uppercase());
        let set = TokenSet::parse(&s).unwrap();
        assert_eq!(set.count(Role::Viewer), 1);
        assert_eq!(set.count(Role::Writer), 1);
        assert_eq!(set.authenticate("a").unwrap().role, Role::Viewer);
        let w = set.authenticate("b").unwrap();
        assert_eq!(w.role, Role::Writer);
        assert_eq!(w.id, format!("token:{}", &h("b")[..8]));
        assert!(set.authenticate("c").is_none());
        assert!(TokenSet::parse("").unwrap().entries.is_empty());
    }

    #[test]
    fn bad_entries_name_the_position_and_never_echo() {
        let secret = "s3cr3t-token-value";
        let cases = [
            (format!("viewer:{},{secret}", h("a")), 2),
            (format!("admin:{}", h("a")), 1),
            (format!("writer:{secret}"), 1),
            (format!("viewer:{},", h("a")), 2),
            (format!("viewer:{},writer:{}", h("a"), h("a")), 2),
            (format!("viewer:{}", "z".repeat(64)), 1),
        ];
        for (input, position) in cases {
            let err = TokenSet::parse(&input).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("entry {position}")), "{msg}");
            assert!(!msg.contains(secret) && !msg.contains(&h("a")), "{msg}");
        }
    }

    #[test]
    fn reads_are_open_without_viewer_tokens() {
        let writers_only = TokenSet::from_tokens(&[(Role::Writer, "w")]);
        assert_eq!(writers_only.authorize_read(None), Ok(None));
        assert_eq!(writers_only.authorize_read(Some("nope")), Ok(None));
        let with_viewer = TokenSet::from_tokens(&[(Role::Viewer, "v"), (Role::Writer, "w")]);
        assert_eq!(
            with_viewer.authorize_read(None).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        assert!(with_viewer.authorize_read(Some("w")).unwrap().is_some());
        assert_eq!(
            with_viewer.authorize_write(Some("v")).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            with_viewer.authorize_write(Some("x")).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            with_viewer.authorize_write(Some("w")).unwrap().role,
            Role::Writer
        );
    }

    #[test]
    fn bodies_are_authorized_by_method_from_the_header() {
        use poem::http::{HeaderMap, HeaderValue, Method};
        let set = TokenSet::from_tokens(&[(Role::Viewer, "v"), (Role::Writer, "w")]);
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", HeaderValue::from_static("bearer  w "));
        assert_eq!(bearer_token(&h), Some("w"));
        h.insert("authorization", HeaderValue::from_static("Basic dzp3"));
        assert_eq!(bearer_token(&h), None);
        assert!(set.authorize_body(&Method::POST, Some("w")).is_ok());
        assert_eq!(
            set.authorize_body(&Method::POST, Some("v"))
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            set.authorize_body(&Method::POST, Some("bogus"))
                .unwrap_err()
                .code,
            ErrorCode::Unauthenticated
        );
        assert!(set.authorize_body(&Method::GET, Some("v")).is_ok());
        assert_eq!(
            set.authorize_body(&Method::GET, None).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        // Open reads stay open; writes never are.
        let open = TokenSet::default();
        assert!(open.authorize_body(&Method::GET, None).is_ok());
        assert!(open.authorize_body(&Method::POST, None).is_err());
    }

    #[test]
    fn debug_shows_counts_only() {
        let set = TokenSet::from_tokens(&[(Role::Viewer, "v")]);
        let d = format!("{set:?}");
        assert!(!d.contains(&h("v")[..8]), "{d}");
        assert!(d.contains("viewers: 1"), "{d}");
    }
}
