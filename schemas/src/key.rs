//! Asset keys (`<provider>/<kind>/<native id>`) and their NATS subjects.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::SchemaError;

/// Prefix of every asset subject.
pub const ASSET_SUBJECT_PREFIX: &str = "inventory.asset";
/// Prefix of every sweep subject.
pub const SWEEP_SUBJECT_PREFIX: &str = "inventory.sweep";
/// Subjects the `INVENTORY` stream captures.
pub const STREAM_SUBJECTS: &str = "inventory.>";
/// The stream's name.
pub const STREAM_NAME: &str = "INVENTORY";

/// Prefix of a subject token that is a hash of a native id that is not subject-safe.
const HASHED_TOKEN_PREFIX: &str = "_h";
const MAX_NATIVE_ID_LEN: usize = 1024;

/// The identity of an asset: `<provider>/<kind>/<native id>`.
///
/// `provider` and `kind` are lowercase subject-safe words; the native id is the provider's own id
/// and may contain anything printable (including `/` and `.`), which [`AssetKey::subject`] maps to
/// a subject-safe token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetKey {
    provider: String,
    kind: String,
    native_id: String,
}

impl AssetKey {
    /// Builds a key, validating each part.
    pub fn new(
        provider: impl Into<String>,
        kind: impl Into<String>,
        native_id: impl Into<String>,
    ) -> Result<Self, SchemaError> {
        let key = Self {
            provider: provider.into(),
            kind: kind.into(),
            native_id: native_id.into(),
        };
        validate_key(&key.provider, &key.kind, &key.native_id)?;
        Ok(key)
    }

    /// Parses `provider/kind/native id` (the native id may itself contain `/`).
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        let mut parts = s.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(k), Some(id)) => Self::new(p, k, id),
            _ => Err(SchemaError::InvalidKey {
                key: s.to_owned(),
                reason: "expected <provider>/<kind>/<native id>".into(),
            }),
        }
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn native_id(&self) -> &str {
        &self.native_id
    }

    /// The NATS subject this asset's events are published on:
    /// `inventory.asset.<provider>.<kind>.<token>`.
    pub fn subject(&self) -> String {
        format!(
            "{ASSET_SUBJECT_PREFIX}.{}.{}.{}",
            self.provider,
            self.kind,
            subject_token(&self.native_id)
        )
    }
}

impl fmt::Display for AssetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.kind, self.native_id)
    }
}

/// Subject filter matching every asset of a provider (and optionally one kind).
pub fn asset_filter(provider: Option<&str>, kind: Option<&str>) -> String {
    match (provider, kind) {
        (Some(p), Some(k)) => format!("{ASSET_SUBJECT_PREFIX}.{p}.{k}.*"),
        (Some(p), None) => format!("{ASSET_SUBJECT_PREFIX}.{p}.>"),
        (None, Some(k)) => format!("{ASSET_SUBJECT_PREFIX}.*.{k}.*"),
        (None, None) => format!("{ASSET_SUBJECT_PREFIX}.>"),
    }
}

/// The subject of a collector scope's sweep events: `inventory.sweep.<provider>.<scope token>`
/// (the scope in the subject, so NATS permissions can bind a collector identity to its scopes).
pub fn sweep_subject(provider: &str, scope: &str) -> String {
    format!("{SWEEP_SUBJECT_PREFIX}.{provider}.{}", subject_token(scope))
}

/// The subject sweeps were published on before they carried their scope:
/// `inventory.sweep.<provider>`. Readers still accept it for history already written.
pub fn legacy_sweep_subject(provider: &str) -> String {
    format!("{SWEEP_SUBJECT_PREFIX}.{provider}")
}

/// Whether a name matches `[A-Za-z0-9_-]{1,128}`: a subject token as it is, or (starting with
/// the hash prefix) one [`subject_token`] hashes.
pub fn is_token_shaped(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether a native id is its own subject token: it matches `[A-Za-z0-9_-]{1,128}` and does not
/// start with the hash prefix.
pub fn is_token_safe(native_id: &str) -> bool {
    is_token_shaped(native_id) && !native_id.starts_with(HASHED_TOKEN_PREFIX)
}

/// Maps a native id to a subject token: itself when [`is_token_safe`], otherwise `_h` followed by
/// 40 hex digits of its SHA-256.
pub fn subject_token(native_id: &str) -> String {
    if is_token_safe(native_id) {
        native_id.to_owned()
    } else {
        let digest = Sha256::digest(native_id.as_bytes());
        format!("{HASHED_TOKEN_PREFIX}{}", &hex::encode(digest)[..40])
    }
}

/// Checks the three parts of an asset key (what [`AssetKey::new`] checks, without building it).
pub fn validate_key(provider: &str, kind: &str, native_id: &str) -> Result<(), SchemaError> {
    validate_word("provider", provider)?;
    validate_word("kind", kind)?;
    validate_native_id(native_id)
}

/// Checks a provider or kind word: 1–64 of `[a-z0-9_-]`.
pub fn validate_word(field: &'static str, value: &str) -> Result<(), SchemaError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SchemaError::InvalidKey {
            key: value.to_owned(),
            reason: format!("{field} must be 1-64 characters of [a-z0-9_-]"),
        })
    }
}

pub(crate) fn validate_native_id(id: &str) -> Result<(), SchemaError> {
    if id.is_empty() || id.len() > MAX_NATIVE_ID_LEN || id.chars().any(char::is_control) {
        return Err(SchemaError::InvalidKey {
            key: id.to_owned(),
            reason: format!(
                "native id must be 1-{MAX_NATIVE_ID_LEN} bytes with no control characters"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_are_their_own_token() {
        let key = AssetKey::new("aws", "account", "123456789012").unwrap();
        assert_eq!(key.subject(), "inventory.asset.aws.account.123456789012");
        assert_eq!(key.to_string(), "aws/account/123456789012");
    }

    #[test]
    fn unsafe_ids_are_hashed_to_a_fixed_length() {
        for id in [
            "projects/123",
            "a.b",
            "x y",
            "_hdeadbeef",
            &"a".repeat(129),
            "ü",
        ] {
            let token = subject_token(id);
            assert!(token.starts_with("_h"), "{id}");
            assert_eq!(token.len(), 42);
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
        assert_ne!(subject_token("a.b"), subject_token("a b"));
    }

    #[test]
    fn keys_round_trip_with_slashes_in_the_native_id() {
        let key = AssetKey::parse("gcp/project/folders/1/projects/x").unwrap();
        assert_eq!(key.native_id(), "folders/1/projects/x");
        assert_eq!(AssetKey::parse(&key.to_string()).unwrap(), key);
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        for bad in [
            "aws",
            "aws/account",
            "AWS/account/1",
            "aws/acc.ount/1",
            "aws/account/",
        ] {
            let err = AssetKey::parse(bad).unwrap_err();
            assert!(err.to_string().contains("invalid asset key"), "{err}");
        }
    }

    #[test]
    fn filters() {
        assert_eq!(asset_filter(Some("aws"), None), "inventory.asset.aws.>");
        assert_eq!(
            asset_filter(Some("aws"), Some("account")),
            "inventory.asset.aws.account.*"
        );
        assert_eq!(asset_filter(None, None), "inventory.asset.>");
        assert_eq!(sweep_subject("gcp", "org-1"), "inventory.sweep.gcp.org-1");
        assert_eq!(
            sweep_subject("gcp", "organizations/1"),
            format!("inventory.sweep.gcp.{}", subject_token("organizations/1"))
        );
        assert_eq!(legacy_sweep_subject("gcp"), "inventory.sweep.gcp");
    }
}
