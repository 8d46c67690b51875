//! Settings helpers shared by the sources: the error that names a setting, validated endpoint
//! URLs and names, the clap value parsers of seconds and booleans, and the defaults of a
//! source's settings. A bad setting is one error line that names it (`PROM_URL: relative URL
//! without a base`).

use std::time::Duration;

use url::Url;

/// Default upper bound, in bytes, of one provider response body (16 MiB): a larger answer is
/// refused (from its `Content-Length`, or while it streams) instead of being buffered.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// The setting that changes [`DEFAULT_MAX_RESPONSE_BYTES`] (`inventory collect
/// --max-response-bytes`), named in the error of a refused answer.
pub const MAX_RESPONSE_BYTES_SETTING: &str = "INVENTORY_COLLECT_MAX_RESPONSE_BYTES";

/// An invalid or missing setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The setting is present but unusable.
    #[error("{setting}: {reason}")]
    Invalid { setting: String, reason: String },
    /// A required setting is absent.
    #[error("{setting}: required but not set")]
    Missing { setting: String },
}

impl ConfigError {
    pub fn invalid(setting: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Parses the base URL of an HTTP endpoint: absolute, `http` or `https`, with a host, no query or
/// fragment. The path is kept (Prometheus and Grafana may be served under a prefix) and made to
/// end in `/`, so that joining `api/...` stays under it.
pub fn parse_endpoint_url(setting: &str, value: &str) -> Result<Url, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConfigError::Missing {
            setting: setting.to_owned(),
        });
    }
    let mut url = Url::parse(value).map_err(|e| ConfigError::invalid(setting, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            setting,
            format!("scheme must be http or https, not {:?}", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(setting, "URL has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            setting,
            "base URL must not have a query or fragment",
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The URL as recorded in events and logs: without user name or password, without the trailing
/// `/` of the base path.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot have credentials, which then have none to strip.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.as_str().trim_end_matches('/').to_owned()
}

/// Checks an endpoint or scope name: 1-128 characters of `[A-Za-z0-9_-]`
/// ([`inventory_schemas::key::is_token_shaped`]), so a clean URI segment and a NATS subject token
/// (hashed when it starts with `_h`).
pub fn validate_name(setting: &str, name: &str) -> Result<(), ConfigError> {
    if inventory_schemas::key::is_token_shaped(name) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            setting,
            format!("{name:?} must be 1-128 characters of [A-Za-z0-9_-]"),
        ))
    }
}

/// clap value parser of a timeout or deadline in whole seconds: a positive number.
pub(crate) fn secs(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(format!("{value:?} is not a positive number of seconds")),
    }
}

/// clap value parser of a per-request timeout in whole seconds: 1 to 3600.
pub(crate) fn secs_up_to_an_hour(value: &str) -> Result<Duration, String> {
    secs(value).and_then(|d| {
        if d.as_secs() <= 3600 {
            Ok(d)
        } else {
            Err(format!("{value:?} is more than 3600 seconds"))
        }
    })
}

/// clap value parser of a yes/no setting: `true`, `1`, `yes` or `false`, `0`, `no`, in any case.
pub(crate) fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

/// A blank optional setting (an environment variable set to nothing, e.g. from an empty
/// ConfigMap key) counts as unset.
pub(crate) fn unset_if_blank(value: &mut Option<String>) {
    if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
        *value = None;
    }
}

/// The settings `T` with every default of its clap declaration, nothing read from the
/// environment; `args` gives what has no default (e.g. `["--url=-"]`). So a library caller's
/// `new()` and the command line share one set of defaults: the `#[arg]` attributes.
pub(crate) fn defaults<T: clap::Args + clap::FromArgMatches>(args: &[&str]) -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|a| a.env(None::<&'static str>));
    let matches = cmd
        .try_get_matches_from(args)
        .expect("the defaults of a source's settings parse");
    T::from_arg_matches(&matches).expect("the defaults of a source's settings are complete")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoint_urls_are_validated_with_the_setting_named() {
        let err = parse_endpoint_url("PROM_URL", "localhost/9090").unwrap_err();
        assert_eq!(err.to_string(), "PROM_URL: relative URL without a base");
        let err = parse_endpoint_url("PROM_URL", "ftp://h/").unwrap_err();
        assert!(
            err.to_string().starts_with("PROM_URL: scheme must be http"),
            "{err}"
        );
        let err = parse_endpoint_url("GRAFANA_URL", "  ").unwrap_err();
        assert_eq!(err.to_string(), "GRAFANA_URL: required but not set");
        let err = parse_endpoint_url("GRAFANA_URL", "http://h/?x=1").unwrap_err();
        assert!(err.to_string().contains("query"), "{err}");
    }

    #[test]
    fn base_paths_end_in_a_slash_and_credentials_are_not_shown() {
        let url = parse_endpoint_url("X", "http://u:secret@h:9090/prom").unwrap();
        assert_eq!(url.path(), "/prom/");
        assert_eq!(
            url.join("api/v1/status/buildinfo").unwrap().path(),
            "/prom/api/v1/status/buildinfo"
        );
        assert_eq!(display_url(&url), "http://h:9090/prom");
        let root = parse_endpoint_url("X", "https://grafana.example.com").unwrap();
        assert_eq!(display_url(&root), "https://grafana.example.com");
    }

    #[test]
    fn names_are_subject_safe() {
        validate_name("PROM_NAME", "prom-default_2").unwrap();
        for bad in ["", "a.b", "a b", "ü", &"x".repeat(129)] {
            let err = validate_name("PROM_NAME", bad).unwrap_err();
            assert!(err.to_string().starts_with("PROM_NAME: "), "{err}");
        }
    }

    #[test]
    fn seconds_and_booleans_parse() {
        assert_eq!(secs("3").unwrap(), Duration::from_secs(3));
        assert!(secs("0").is_err());
        assert!(secs("x").is_err());
        assert_eq!(
            secs_up_to_an_hour("3600").unwrap(),
            Duration::from_secs(3600)
        );
        assert!(secs_up_to_an_hour("3601").is_err());
        assert!(boolean("Yes").unwrap() && !boolean(" FALSE ").unwrap() && !boolean("0").unwrap());
        assert!(boolean("maybe").unwrap_err().contains("not true or false"));
        let mut v = Some("  ".to_owned());
        unset_if_blank(&mut v);
        assert_eq!(v, None);
    }
}
