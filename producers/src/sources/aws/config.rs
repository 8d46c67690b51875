//! Settings of the `aws` source.

use std::fmt;
use std::time::Duration;

use aws_sdk_organizations::config::Credentials;

use crate::config::{boolean, defaults, parse_endpoint_url, secs, ConfigError};

/// Region of the API calls when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set:
/// Organizations is a global service served from there.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Settings of the `aws` source: the flags of `inventory collect aws`, each with its
/// environment variable. Credentials: the SDK's default chain (environment, profile, web
/// identity = IRSA, container, instance), or that chain assuming `--role-arn`. `Debug` redacts
/// the external id and credentials.
#[derive(Clone, clap::Args)]
pub struct AwsConfig {
    /// Role to assume for the audit (unset: act as the default credential chain's principal,
    /// e.g. the IRSA role itself).
    #[arg(long, env = "AWS_ORG_AUDIT_ROLE_ARN", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// External id required by the role's trust policy. From the environment only (a secret on the command line is refused).
    #[arg(long, env = "AWS_ORG_AUDIT_EXTERNAL_ID", hide_env_values = true)]
    pub external_id: Option<String>,
    /// Session name of the assumed role, visible in CloudTrail.
    #[arg(
        long,
        env = "AWS_ORG_AUDIT_SESSION_NAME",
        default_value = "asset-inventory"
    )]
    pub session_name: String,
    /// Region of the API calls (default: --default-region, else us-east-1: Organizations is a
    /// global service served from there).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Region used when --region (AWS_REGION) is not set.
    #[arg(long, env = "AWS_DEFAULT_REGION", value_name = "REGION")]
    pub default_region: Option<String>,
    /// Organizations endpoint, for private endpoints and tests (default: --endpoint-url, else
    /// the SDK's regional endpoint).
    #[arg(
        long = "endpoint-url-organizations",
        env = "AWS_ENDPOINT_URL_ORGANIZATIONS",
        value_name = "URL"
    )]
    pub endpoint_url: Option<String>,
    /// STS endpoint (default: --endpoint-url, else the SDK's).
    #[arg(
        long = "endpoint-url-sts",
        env = "AWS_ENDPOINT_URL_STS",
        value_name = "URL"
    )]
    pub sts_endpoint_url: Option<String>,
    /// Endpoint of both APIs when theirs is not set.
    #[arg(long = "endpoint-url", env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub any_endpoint_url: Option<String>,
    /// The organisation expected (o-...): the scope even when the first call fails; a sweep
    /// that finds another organisation fails (unset: learnt at start).
    #[arg(long, env = "AWS_ORG_ID")]
    pub org_id: Option<String>,
    /// Read account tags into labels (true or false).
    #[arg(long, env = "AWS_ORG_TAGS", value_name = "BOOL", default_value = "true", value_parser = boolean, action = clap::ArgAction::Set)]
    pub tags: bool,
    /// Requests in flight at once during the walk and the tag reads (1-64; Organizations
    /// throttles early).
    #[arg(long, env = "AWS_ORG_CONCURRENCY", default_value = "4")]
    pub concurrency: usize,
    /// Attempts per request, throttling and 5xx included (1-20).
    #[arg(long, env = "AWS_MAX_ATTEMPTS", default_value = "5")]
    pub max_attempts: u32,
    /// First retry backoff; it grows exponentially with jitter, up to 20 s (default 1 s); not a
    /// setting.
    #[arg(skip = Duration::from_secs(1))]
    pub initial_backoff: Duration,
    /// Timeout of one attempt of one request, in seconds.
    #[arg(long = "timeout-secs", env = "AWS_ORG_TIMEOUT_SECS", value_name = "SECS", default_value = "10", value_parser = secs)]
    pub timeout: Duration,
    /// Deadline of a whole sweep, in seconds; what is not read by then makes it partial.
    #[arg(long = "deadline-secs", env = "AWS_ORG_DEADLINE_SECS", value_name = "SECS", default_value = "900", value_parser = secs)]
    pub deadline: Duration,
    /// Static credentials instead of the default chain (tests, local runs); not a setting.
    #[arg(skip)]
    pub credentials: Option<Credentials>,
}

impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConfig")
            .field("role_arn", &self.role_arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "<redacted>"),
            )
            .field("session_name", &self.session_name)
            .field("region", &self.region())
            .field("endpoint_url", &self.organizations_endpoint())
            .field("sts_endpoint_url", &self.sts_endpoint())
            .field("org_id", &self.org_id)
            .field("tags", &self.tags)
            .field("concurrency", &self.concurrency)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<static>"),
            )
            .finish()
    }
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsConfig {
    /// Defaults: default credential chain, `us-east-1`, SDK endpoints, tags on.
    pub fn new() -> Self {
        defaults(&[])
    }

    /// The region of the calls: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn region(&self) -> &str {
        self.region
            .as_deref()
            .or(self.default_region.as_deref())
            .unwrap_or(DEFAULT_REGION)
    }

    /// The Organizations endpoint: `AWS_ENDPOINT_URL_ORGANIZATIONS`, else `AWS_ENDPOINT_URL`.
    pub fn organizations_endpoint(&self) -> Option<&str> {
        self.endpoint_url
            .as_deref()
            .or(self.any_endpoint_url.as_deref())
    }

    /// The STS endpoint: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`.
    pub fn sts_endpoint(&self) -> Option<&str> {
        self.sts_endpoint_url
            .as_deref()
            .or(self.any_endpoint_url.as_deref())
    }

    /// A blank optional setting counts as unset (an empty ConfigMap key).
    pub(super) fn unset_blanks(&mut self) {
        for v in [
            &mut self.role_arn,
            &mut self.external_id,
            &mut self.region,
            &mut self.default_region,
            &mut self.endpoint_url,
            &mut self.sts_endpoint_url,
            &mut self.any_endpoint_url,
            &mut self.org_id,
        ] {
            crate::config::unset_if_blank(v);
        }
    }

    /// Checks every setting; the error names the one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(arn) = &self.role_arn {
            let ok = arn.starts_with("arn:")
                && arn
                    .split(':')
                    .nth(5)
                    .is_some_and(|r| r.starts_with("role/"));
            if !ok {
                return Err(ConfigError::invalid(
                    "AWS_ORG_AUDIT_ROLE_ARN",
                    format!("{arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
                ));
            }
        }
        let session_ok = (2..=64).contains(&self.session_name.len())
            && self
                .session_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !session_ok {
            return Err(ConfigError::invalid(
                "AWS_ORG_AUDIT_SESSION_NAME",
                "must be 2-64 characters of [A-Za-z0-9+=,.@_-]",
            ));
        }
        let region = self.region();
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            let setting = if self.region.is_some() {
                "AWS_REGION"
            } else {
                "AWS_DEFAULT_REGION"
            };
            return Err(ConfigError::invalid(
                setting,
                format!("{region:?} is not a region name"),
            ));
        }
        for (setting, url) in [
            ("AWS_ENDPOINT_URL_ORGANIZATIONS", &self.endpoint_url),
            ("AWS_ENDPOINT_URL_STS", &self.sts_endpoint_url),
            ("AWS_ENDPOINT_URL", &self.any_endpoint_url),
        ] {
            if let Some(u) = url {
                parse_endpoint_url(setting, u)?;
            }
        }
        if let Some(id) = &self.org_id {
            if !valid_org_id(id) {
                return Err(ConfigError::invalid(
                    "AWS_ORG_ID",
                    format!("{id:?} is not an organisation id (o- and 10-32 of [a-z0-9])"),
                ));
            }
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(ConfigError::invalid("AWS_ORG_CONCURRENCY", "must be 1-64"));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(ConfigError::invalid("AWS_MAX_ATTEMPTS", "must be 1-20"));
        }
        Ok(())
    }
}

pub(super) fn valid_org_id(id: &str) -> bool {
    id.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}
