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

mod client;
mod config;
mod normalise;
mod walk;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use aws_sdk_organizations::operation::RequestId;
use inventory_schemas::{asset_filter, Asset, Provenance};
use tokio::time::Instant;
use tracing::{info, warn};

pub use config::AwsConfig;

use crate::config::ConfigError;
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};
use crate::sources::shared::retry::deadline_after;
use crate::sources::{Common, Settings};
use client::{build_clients, classify, within, Clients};
use normalise::normalise;
use walk::Listing;

const PROVIDER: &str = "aws";
const KIND: &str = "account";
/// Every API operation a sweep may call (and exactly those the IAM policy in `infra/aws` allows).
pub const API: &str = "sts:GetCallerIdentity, organizations:DescribeOrganization, ListRoots, \
ListOrganizationalUnitsForParent, ListAccountsForParent, ListAccounts, ListParents, \
ListTagsForResource";
/// The scope recorded when the organisation could not be learnt at start (and `AWS_ORG_ID`
/// does not say it).
pub const UNKNOWN_SCOPE: &str = "unknown";

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
        let listing = walk::list(&self.clients, &self.config, deadline).await?;
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

/// The SDK reads the answers itself: no limit on answers applies (see the module docs).
impl Settings for AwsConfig {
    fn build(
        mut self,
        _common: Common,
    ) -> impl Future<Output = Result<Box<dyn Source>, ConfigError>> + Send {
        self.unset_blanks();
        async move {
            AwsSource::connect(self)
                .await
                .map(|s| Box::new(s) as Box<dyn Source>)
        }
    }
}

impl Source for AwsSource {
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
    use aws_sdk_organizations::types::{Account, AccountJoinedMethod, AccountStatus};
    use client::xml_element;
    use config::valid_org_id;
    use inventory_schemas::AssetStatus;
    use serde_json::json;
    use std::collections::BTreeMap;

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
        assert!(bad(|c| c.region = Some("US East".into())).starts_with("AWS_REGION: "));
        assert!(
            bad(|c| c.default_region = Some("US East".into())).starts_with("AWS_DEFAULT_REGION: ")
        );
        assert!(
            bad(|c| c.any_endpoint_url = Some("h:1/x".into())).starts_with("AWS_ENDPOINT_URL: ")
        );
        assert!(bad(|c| c.session_name = "a b".into()).starts_with("AWS_ORG_AUDIT_SESSION_NAME: "));
        assert!(bad(|c| c.concurrency = 0).starts_with("AWS_ORG_CONCURRENCY: "));
        let mut ok = AwsConfig::new();
        ok.role_arn = Some("arn:aws:iam::123456789012:role/OrgAudit".into());
        ok.endpoint_url = Some("http://127.0.0.1:5000".into());
        ok.org_id = Some("o-abcdef1234".into());
        ok.validate().unwrap();
        // The fallbacks: AWS_DEFAULT_REGION and AWS_ENDPOINT_URL answer when the first is unset.
        assert_eq!(ok.region(), "us-east-1");
        ok.default_region = Some("eu-west-1".into());
        assert_eq!(ok.region(), "eu-west-1");
        ok.region = Some("eu-central-1".into());
        assert_eq!(ok.region(), "eu-central-1");
        ok.any_endpoint_url = Some("http://127.0.0.1:4566".into());
        assert_eq!(ok.organizations_endpoint(), Some("http://127.0.0.1:5000"));
        assert_eq!(ok.sts_endpoint(), Some("http://127.0.0.1:4566"));
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
