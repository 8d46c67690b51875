//! The `aws` source: every account of an AWS Organization, reported as `aws/account/<id>`, with
//! its organisational path, from the Organizations API (`aws-sdk-organizations`).
//!
//! One sweep: `sts:GetCallerIdentity` (the principal recorded in provenance),
//! `DescribeOrganization` (the scope), then the OU tree is walked once, level by level from
//! `ListRoots`, with `ListOrganizationalUnitsForParent` and `ListAccountsForParent` for every
//! parent: that gives each account's path without a call per account. `ListAccounts` then
//! reconciles: it is the authoritative member list, so an account moved or created while the
//! tree was walked is still reported (its parent found with `ListParents`), and one removed
//! meanwhile is dropped. Tags come from `ListTagsForResource` (one call per account, bounded
//! concurrency); `AccessDenied` there skips tags for the sweep, it does not fail it.
//!
//! Credentials: the SDK's default chain (environment, profile, web identity = IRSA, container,
//! instance), or that chain assuming `AWS_ORG_AUDIT_ROLE_ARN`. Throttling and 5xx are retried by
//! the SDK (standard mode: exponential backoff with jitter); the whole sweep has a deadline. A
//! page that still fails makes the listing incomplete (a `partial` sweep, no tombstones);
//! refused credentials fail the sweep with one line.
//!
//! Response size: the SDK reads and parses each answer itself, through its own HTTP stack, and
//! offers no byte limit; `INVENTORY_COLLECT_MAX_RESPONSE_BYTES` does not apply here. What bounds
//! an answer is the API (Organizations pages hold at most 20 accounts or OUs, 50 tags per
//! call), the per-attempt timeout (`AWS_ORG_TIMEOUT_SECS`) and the sweep deadline.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_organizations as org;
use aws_sdk_organizations::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_organizations::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_organizations::operation::RequestId;
use aws_sdk_organizations::types::Account;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use inventory_schemas::{asset_filter, Asset, AssetStatus, Provenance};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use super::aws_walk::{self, Listing};
use super::retry::deadline_after;
use crate::config::{display_url, env_opt, parse_endpoint_url, parse_secs, ConfigError};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};

const PROVIDER: &str = "aws";
const KIND: &str = "account";
/// Every API operation a sweep may call (and exactly those the IAM policy in `infra/aws` allows).
pub const API: &str = "sts:GetCallerIdentity, organizations:DescribeOrganization, ListRoots, \
ListOrganizationalUnitsForParent, ListAccountsForParent, ListAccounts, ListParents, \
ListTagsForResource";
/// The scope recorded when the organisation could not be learnt at start (and `AWS_ORG_ID`
/// does not say it).
pub const UNKNOWN_SCOPE: &str = "unknown";

/// Settings of the `aws` source. `Debug` redacts the external id and credentials.
#[derive(Clone)]
pub struct AwsConfig {
    /// Role to assume for the audit (`AWS_ORG_AUDIT_ROLE_ARN`); unset: act as the default
    /// credential chain's principal (e.g. the IRSA role itself).
    pub role_arn: Option<String>,
    /// External id required by the role's trust policy (`AWS_ORG_AUDIT_EXTERNAL_ID`).
    pub external_id: Option<String>,
    /// Session name of the assumed role, visible in CloudTrail (`AWS_ORG_AUDIT_SESSION_NAME`,
    /// default `asset-inventory`).
    pub session_name: String,
    /// Region of the API calls (`AWS_REGION`, then `AWS_DEFAULT_REGION`, default `us-east-1`:
    /// Organizations is a global service served from there).
    pub region: String,
    /// Organizations endpoint, for private endpoints and tests (`AWS_ENDPOINT_URL_ORGANIZATIONS`,
    /// then `AWS_ENDPOINT_URL`); unset: the SDK's regional endpoint.
    pub endpoint_url: Option<String>,
    /// STS endpoint (`AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`); unset: the SDK's.
    pub sts_endpoint_url: Option<String>,
    /// The organisation expected (`AWS_ORG_ID`, `o-...`): the scope even when the first call
    /// fails; a sweep that finds another organisation fails. Unset: learnt at start.
    pub org_id: Option<String>,
    /// Read account tags into `labels` (`AWS_ORG_TAGS`, default `true`).
    pub tags: bool,
    /// Requests in flight at once during the walk and the tag reads (`AWS_ORG_CONCURRENCY`,
    /// default 4; Organizations throttles early).
    pub concurrency: usize,
    /// Attempts per request, throttling and 5xx included (`AWS_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// First retry backoff; it grows exponentially with jitter, up to 20 s (default 1 s).
    pub initial_backoff: Duration,
    /// Timeout of one attempt of one request (`AWS_ORG_TIMEOUT_SECS`, default 10).
    pub timeout: Duration,
    /// Deadline of a whole sweep; what is not read by then makes it partial
    /// (`AWS_ORG_DEADLINE_SECS`, default 900).
    pub deadline: Duration,
    /// Static credentials instead of the default chain (tests, local runs); never read from the
    /// environment by this struct.
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
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("sts_endpoint_url", &self.sts_endpoint_url)
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
        Self {
            role_arn: None,
            external_id: None,
            session_name: "asset-inventory".to_owned(),
            region: "us-east-1".to_owned(),
            endpoint_url: None,
            sts_endpoint_url: None,
            org_id: None,
            tags: true,
            concurrency: 4,
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(900),
            credentials: None,
        }
    }

    /// Reads the settings named on each field, and validates them.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self::new();
        c.role_arn = env_opt("AWS_ORG_AUDIT_ROLE_ARN");
        c.external_id = env_opt("AWS_ORG_AUDIT_EXTERNAL_ID");
        if let Some(s) = env_opt("AWS_ORG_AUDIT_SESSION_NAME") {
            c.session_name = s;
        }
        if let Some(r) = env_opt("AWS_REGION").or_else(|| env_opt("AWS_DEFAULT_REGION")) {
            c.region = r;
        }
        c.endpoint_url =
            env_opt("AWS_ENDPOINT_URL_ORGANIZATIONS").or_else(|| env_opt("AWS_ENDPOINT_URL"));
        c.sts_endpoint_url =
            env_opt("AWS_ENDPOINT_URL_STS").or_else(|| env_opt("AWS_ENDPOINT_URL"));
        c.org_id = env_opt("AWS_ORG_ID");
        if let Some(t) = env_opt("AWS_ORG_TAGS") {
            c.tags = match t.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError::invalid(
                        "AWS_ORG_TAGS",
                        format!("{t:?} is not true or false"),
                    ))
                }
            };
        }
        if let Some(n) = env_opt("AWS_ORG_CONCURRENCY") {
            c.concurrency = n.trim().parse().map_err(|_| {
                ConfigError::invalid("AWS_ORG_CONCURRENCY", format!("{n:?} is not a number"))
            })?;
        }
        if let Some(n) = env_opt("AWS_MAX_ATTEMPTS") {
            c.max_attempts = n.trim().parse().map_err(|_| {
                ConfigError::invalid("AWS_MAX_ATTEMPTS", format!("{n:?} is not a number"))
            })?;
        }
        if let Some(t) = env_opt("AWS_ORG_TIMEOUT_SECS") {
            c.timeout = parse_secs("AWS_ORG_TIMEOUT_SECS", &t)?;
        }
        if let Some(t) = env_opt("AWS_ORG_DEADLINE_SECS") {
            c.deadline = parse_secs("AWS_ORG_DEADLINE_SECS", &t)?;
        }
        c.validate()?;
        Ok(c)
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
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ConfigError::invalid(
                "AWS_REGION",
                format!("{:?} is not a region name", self.region),
            ));
        }
        for (setting, url) in [
            ("AWS_ENDPOINT_URL_ORGANIZATIONS", &self.endpoint_url),
            ("AWS_ENDPOINT_URL_STS", &self.sts_endpoint_url),
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

fn valid_org_id(id: &str) -> bool {
    id.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The SDK clients of a source.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub org: org::Client,
    pub sts: aws_sdk_sts::Client,
}

/// The `aws` source: one organisation.
#[derive(Clone)]
pub struct AwsSource {
    clients: Clients,
    config: Arc<AwsConfig>,
    /// The organisation id, once known; `scope()` is `AWS_ORG_ID` or `unknown` until then.
    org_id: Arc<OnceLock<String>>,
    fallback_scope: String,
}

impl fmt::Debug for AwsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSource")
            .field("scope", &self.scope())
            .field("config", &self.config)
            .finish()
    }
}

impl AwsSource {
    /// Validates the config, builds the clients and learns the organisation id
    /// (`DescribeOrganization`). Only a bad setting is an error: when the provider cannot be
    /// asked (refused credentials, no network), the source is still returned, with the scope
    /// `AWS_ORG_ID` or `unknown`, and its sweep records the failure (`failed`, exit 1).
    pub async fn connect(config: AwsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let clients = build_clients(&config).await;
        let source = Self {
            clients,
            fallback_scope: config
                .org_id
                .clone()
                .unwrap_or_else(|| UNKNOWN_SCOPE.to_owned()),
            config: Arc::new(config),
            org_id: Arc::new(OnceLock::new()),
        };
        match source
            .describe_organization(deadline_after(source.config.deadline))
            .await
        {
            Ok((id, _)) => match &source.config.org_id {
                Some(expected) if *expected != id => {
                    warn!(expected = %expected, found = %id, "the credentials see another organisation than AWS_ORG_ID");
                }
                _ => {
                    let _ = source.org_id.set(id);
                }
            },
            Err(e) => {
                warn!(error = %e, scope = %source.fallback_scope, "cannot learn the organisation at start; sweeps will fail until it answers")
            }
        }
        Ok(source)
    }

    /// The organisation id, when known.
    pub fn org_id(&self) -> Option<&str> {
        self.org_id.get().map(String::as_str)
    }

    async fn describe_organization(
        &self,
        deadline: Instant,
    ) -> Result<(String, Option<String>), SourceError> {
        let out = within(deadline, "DescribeOrganization", async {
            self.clients
                .org
                .describe_organization()
                .send()
                .await
                .map_err(|e| classify("organizations:DescribeOrganization", e))
        })
        .await?;
        let id = out
            .organization()
            .and_then(|o| o.id())
            .ok_or_else(|| {
                SourceError::BadResponse(
                    "aws organizations:DescribeOrganization: answer without an organisation id"
                        .into(),
                )
            })?
            .to_owned();
        Ok((id, out.request_id().map(str::to_owned)))
    }

    /// The principal the calls are made as (`GetCallerIdentity`), with its request id. Refused
    /// credentials are an error; other trouble only loses the principal.
    async fn principal(
        &self,
        deadline: Instant,
    ) -> Result<(Option<String>, Option<String>), SourceError> {
        let call = within(deadline, "GetCallerIdentity", async {
            self.clients
                .sts
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| classify("sts:GetCallerIdentity", e))
        })
        .await;
        match call {
            Ok(out) => Ok((
                out.arn().map(str::to_owned),
                out.request_id().map(str::to_owned),
            )),
            Err(e @ SourceError::Auth(_)) => Err(e),
            Err(e) => {
                warn!(error = %e, "cannot tell the principal; provenance will not name it");
                Ok((None, None))
            }
        }
    }

    async fn sweep(&self) -> Result<Collected, SourceError> {
        let deadline = deadline_after(self.config.deadline);
        let (principal, sts_request) = self.principal(deadline).await?;
        let (org_id, org_request) = self.describe_organization(deadline).await?;
        match self.org_id.get() {
            Some(known) if *known == org_id => {}
            Some(known) => {
                return Err(SourceError::Config(format!(
                    "aws: the credentials now see organisation {org_id}, not {known}: refusing to sweep it as {known}"
                )))
            }
            None => match &self.config.org_id {
                Some(expected) if *expected != org_id => {
                    return Err(SourceError::Config(format!(
                        "aws: AWS_ORG_ID is {expected}, but the credentials see organisation {org_id}"
                    )))
                }
                Some(_) => {
                    let _ = self.org_id.set(org_id.clone());
                }
                None => {
                    // This sweep is already recorded under `unknown`; the next one is not.
                    let _ = self.org_id.set(org_id.clone());
                    return Err(SourceError::Transient(format!(
                        "aws: organisation {org_id} answers only now; this sweep is recorded as {UNKNOWN_SCOPE}, the next one sweeps {org_id}"
                    )));
                }
            },
        }
        let mut prov = provenance(PROVIDER, API);
        prov.principal = principal;
        let listing = aws_walk::list(&self.clients, &self.config, deadline).await?;
        Ok(self.finish(listing, prov, [sts_request, org_request]))
    }

    fn finish(
        &self,
        listing: Listing,
        mut prov: Provenance,
        requests: [Option<String>; 2],
    ) -> Collected {
        let api = if listing.tags_read {
            API.to_owned()
        } else {
            API.replace(", ListTagsForResource", "")
        };
        prov.api.clone_from(&api);
        prov.pages = listing.pages;
        prov.request_ids = requests
            .into_iter()
            .flatten()
            .chain(listing.request_ids.iter().cloned())
            .collect();
        let assets: Vec<Asset> = listing
            .accounts
            .values()
            .map(|found| {
                let mut p = prov.clone();
                p.pages = 1;
                p.request_ids = found.request_ids.clone();
                normalise(
                    &found.account,
                    &found.path,
                    &found.path_names,
                    found.labels.clone(),
                    p,
                )
            })
            .collect();
        info!(
            org = self.scope(),
            accounts = assets.len(),
            pages = listing.pages,
            complete = listing.errors.is_empty(),
            "aws organisation listed"
        );
        let error = summarise(&listing.errors);
        Collected {
            assets,
            complete: error.is_none(),
            error,
            provenance: prov,
        }
    }
}

/// One line for the sweep event: the first error, and how many more there were.
fn summarise(errors: &[String]) -> Option<String> {
    match errors {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => Some(format!(
            "{first} (and {} more failed request(s))",
            rest.len()
        )),
    }
}

/// Runs one request under the sweep's deadline.
pub(crate) async fn within<T>(
    deadline: Instant,
    op: &str,
    fut: impl std::future::Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(SourceError::Transient(format!(
            "aws {op}: the sweep's deadline passed"
        ))),
    }
}

async fn build_clients(config: &AwsConfig) -> Clients {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let retry = RetryConfig::standard()
        .with_max_attempts(config.max_attempts)
        .with_initial_backoff(config.initial_backoff);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .operation_attempt_timeout(config.timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(config.region.clone()))
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(creds) = &config.credentials {
        loader = loader.credentials_provider(creds.clone());
    }
    let base = loader.load().await;
    let endpoint = |u: &Option<String>, setting: &str| {
        u.as_deref()
            .and_then(|u| parse_endpoint_url(setting, u).ok())
            .map(|u| display_url(&u))
    };
    let org_url = endpoint(&config.endpoint_url, "AWS_ENDPOINT_URL_ORGANIZATIONS");
    let sts_url = endpoint(&config.sts_endpoint_url, "AWS_ENDPOINT_URL_STS");
    let sts_base = match &sts_url {
        Some(u) => base.to_builder().endpoint_url(u).build(),
        None => base.clone(),
    };
    let assumed = match &config.role_arn {
        Some(role) => {
            let mut b = AssumeRoleProvider::builder(role)
                .session_name(&config.session_name)
                .configure(&sts_base);
            if let Some(x) = &config.external_id {
                b = b.external_id(x);
            }
            Some(SharedCredentialsProvider::new(b.build().await))
        }
        None => None,
    };
    let mut ob = org::config::Builder::from(&base);
    let mut sb = aws_sdk_sts::config::Builder::from(&sts_base);
    if let Some(u) = org_url {
        ob = ob.endpoint_url(u);
    }
    if let Some(p) = assumed {
        ob.set_credentials_provider(Some(p.clone()));
        sb.set_credentials_provider(Some(p));
    }
    Clients {
        org: org::Client::from_conf(ob.build()),
        sts: aws_sdk_sts::Client::from_conf(sb.build()),
    }
}

/// Error codes that mean the credentials were refused or are not allowed to list.
const AUTH_CODES: [&str; 13] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "AuthFailure",
    "InvalidAccessKeyId",
];

/// Maps an SDK error (after the SDK's own retries) to a [`SourceError`], in one line that names
/// the operation and never shows credentials.
pub(crate) fn classify<E>(
    op: &str,
    err: SdkError<E, org::config::http::HttpResponse>,
) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let request = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amzn-requestid").map(str::to_owned))
        .map(|r| format!(" (request id {r})"))
        .unwrap_or_default();
    // The code and message the SDK parsed, else an XML error body (what some endpoints and
    // proxies answer even for JSON protocols).
    let (code, message) = match err.code() {
        Some(c) => (
            Some(c.to_owned()),
            err.message().unwrap_or_default().to_owned(),
        ),
        None => {
            let body = err
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            (
                xml_element(&body, "Code"),
                xml_element(&body, "Message").unwrap_or_default(),
            )
        }
    };
    if let Some(c) = code.as_deref() {
        if AUTH_CODES.contains(&c) {
            return SourceError::Auth(format!(
                "aws {op}: credentials refused: {c}: {message}{request}"
            ));
        }
        if c == "AWSOrganizationsNotInUseException" {
            return SourceError::Config(format!(
                "aws {op}: the account of these credentials is not in an organisation ({c}); use the management or a delegated administrator account, or set AWS_ORG_AUDIT_ROLE_ARN"
            ));
        }
    }
    if credentials_missing(&err) {
        return SourceError::Auth(format!(
            "aws {op}: no usable credentials: {}",
            one_line(&DisplayErrorContext(&err).to_string())
        ));
    }
    let what = match &code {
        Some(c) if message.is_empty() => c.clone(),
        Some(c) => format!("{c}: {message}"),
        None => "error answer without an error code".to_owned(),
    };
    match (&err, status) {
        (SdkError::ServiceError(_) | SdkError::ResponseError(_), Some(s @ (401 | 403))) => {
            SourceError::Auth(format!(
                "aws {op}: credentials refused: HTTP {s}: {what}{request}"
            ))
        }
        (SdkError::ServiceError(_) | SdkError::ResponseError(_), Some(s)) => {
            let line = format!("aws {op}: HTTP {s}: {what}{request}");
            let throttled = code
                .as_deref()
                .is_some_and(|c| c.contains("Throttl") || c == "TooManyRequestsException");
            if s >= 500 || s == 429 || throttled {
                SourceError::Transient(line)
            } else {
                SourceError::BadResponse(line)
            }
        }
        (SdkError::ConstructionFailure(_), _) => SourceError::Config(format!(
            "aws {op}: {}",
            one_line(&DisplayErrorContext(&err).to_string())
        )),
        _ => SourceError::Transient(format!(
            "aws {op}: {}",
            one_line(&DisplayErrorContext(&err).to_string())
        )),
    }
}

/// The text of the first `<name>…</name>` in an XML error body.
fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_owned()).filter(|s| !s.is_empty())
}

fn credentials_missing<E>(err: &SdkError<E, org::config::http::HttpResponse>) -> bool
where
    E: std::error::Error + 'static,
{
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(c) = cause {
        if c.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds the account asset. `org_path` holds ids (root, OUs); the names are in
/// `raw.OrgPathNames`.
pub(crate) fn normalise(
    account: &Account,
    path: &[String],
    path_names: &[String],
    labels: BTreeMap<String, String>,
    provenance: Provenance,
) -> Asset {
    let id = account.id().unwrap_or_default().to_owned();
    let status_word = account.status().map(|s| s.as_str().to_owned());
    let status = match status_word.as_deref() {
        Some("ACTIVE") => AssetStatus::Active,
        Some("SUSPENDED") => AssetStatus::Suspended,
        Some("PENDING_CLOSURE") => AssetStatus::PendingClosure,
        _ => AssetStatus::Unknown,
    };
    let joined = account
        .joined_timestamp()
        .and_then(|t| t.fmt(aws_smithy_types_format()).ok());
    let raw = json!({
        "Id": id,
        "Arn": account.arn(),
        "Email": account.email(),
        "Name": account.name(),
        "Status": status_word,
        "JoinedMethod": account.joined_method().map(|m| m.as_str().to_owned()),
        "JoinedTimestamp": joined,
        "ParentId": path.last(),
        "OrgPathNames": path_names,
    });
    Asset {
        name: account.name().unwrap_or(&id).to_owned(),
        id,
        provider: PROVIDER.to_owned(),
        kind: KIND.to_owned(),
        status,
        org_path: path.to_vec(),
        region_residency: Vec::new(),
        url: None,
        auth_mode: None,
        labels,
        raw: strip_nulls(raw),
        provenance,
    }
}

fn aws_smithy_types_format() -> org::primitives::DateTimeFormat {
    org::primitives::DateTimeFormat::DateTime
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

impl Source for AwsSource {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn provider(&self) -> &str {
        PROVIDER
    }

    fn scope(&self) -> &str {
        self.org_id
            .get()
            .map_or(self.fallback_scope.as_str(), String::as_str)
    }

    /// Every AWS account; accounts of other organisations' collectors are never tombstoned
    /// (source check).
    fn subject_filter(&self) -> String {
        asset_filter(Some(PROVIDER), Some(KIND))
    }

    fn collect(&self) -> CollectFuture<'_> {
        Box::pin(self.sweep())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_sdk_organizations::types::{AccountJoinedMethod, AccountStatus};

    #[test]
    fn config_errors_name_the_setting() {
        let bad = |f: fn(&mut AwsConfig)| {
            let mut c = AwsConfig::new();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.endpoint_url = Some("localhost:4566/x".into()))
            .starts_with("AWS_ENDPOINT_URL_ORGANIZATIONS: "));
        assert!(bad(|c| c.sts_endpoint_url = Some("ftp://h".into()))
            .starts_with("AWS_ENDPOINT_URL_STS: "));
        assert!(
            bad(|c| c.role_arn = Some("OrgAudit".into())).starts_with("AWS_ORG_AUDIT_ROLE_ARN: ")
        );
        assert!(bad(|c| c.org_id = Some("org-1".into())).starts_with("AWS_ORG_ID: "));
        assert!(bad(|c| c.region = "US East".into()).starts_with("AWS_REGION: "));
        assert!(bad(|c| c.session_name = "a b".into()).starts_with("AWS_ORG_AUDIT_SESSION_NAME: "));
        assert!(bad(|c| c.concurrency = 0).starts_with("AWS_ORG_CONCURRENCY: "));
        let mut ok = AwsConfig::new();
        ok.role_arn = Some("arn:aws:iam::123456789012:role/OrgAudit".into());
        ok.endpoint_url = Some("http://127.0.0.1:5000".into());
        ok.org_id = Some("o-abcdef1234".into());
        ok.validate().unwrap();
        ok.external_id = Some("s3cr3t".into());
        assert!(!format!("{ok:?}").contains("s3cr3t"));
    }

    #[test]
    fn accounts_normalise_with_their_path() {
        let account = Account::builder()
            .id("123456789012")
            .arn("arn:aws:organizations::111111111111:account/o-abcdef1234/123456789012")
            .email("a@example.com")
            .name("prod-eu")
            .status(AccountStatus::Active)
            .joined_method(AccountJoinedMethod::Created)
            .joined_timestamp(aws_sdk_organizations::primitives::DateTime::from_secs(
                1_700_000_000,
            ))
            .build();
        let path = vec!["r-ab12".to_owned(), "ou-ab12-11111111".to_owned()];
        let names = vec!["Root".to_owned(), "Prod".to_owned()];
        let labels = BTreeMap::from([("team".to_owned(), "core".to_owned())]);
        let a = normalise(&account, &path, &names, labels, provenance(PROVIDER, API));
        assert_eq!(a.key().unwrap().to_string(), "aws/account/123456789012");
        assert_eq!(
            (a.name.as_str(), a.status),
            ("prod-eu", AssetStatus::Active)
        );
        assert_eq!(a.org_path, path);
        assert_eq!(a.labels["team"], "core");
        assert_eq!(a.raw["JoinedTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(a.raw["JoinedMethod"], "CREATED");
        assert_eq!(a.raw["ParentId"], "ou-ab12-11111111");
        assert_eq!(a.raw["OrgPathNames"], json!(["Root", "Prod"]));
        let odd = Account::builder()
            .id("210987654321")
            .status(AccountStatus::from("CLOSED_SOMEHOW"))
            .build();
        let a = normalise(&odd, &[], &[], BTreeMap::new(), provenance(PROVIDER, API));
        assert_eq!(
            (a.status, a.name.as_str()),
            (AssetStatus::Unknown, "210987654321")
        );
        assert!(a.raw.get("Email").is_none());
    }

    #[test]
    fn errors_summarise_in_one_line() {
        assert_eq!(summarise(&[]), None);
        assert_eq!(
            summarise(&["a".into(), "b".into(), "c".into()]).unwrap(),
            "a (and 2 more failed request(s))"
        );
        assert!(valid_org_id("o-abcdefghij"));
        let body = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>bad</Message></Error></ErrorResponse>";
        assert_eq!(
            xml_element(body, "Code").as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(xml_element(body, "Message").as_deref(), Some("bad"));
        assert_eq!(xml_element("<html/>", "Code"), None);
        assert!(!valid_org_id("o-ABCDEFGHIJ"));
    }
}
